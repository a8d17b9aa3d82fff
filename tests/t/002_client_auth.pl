# pgwing authenticates clients itself, per auth_type (scram-sha-256, md5,
# plain, trust), from the auth file: good password in, bad password and
# unknown user out with 28P01 and the same message.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;

my $node = new_node('primary');
create_role($node, 'alice', 'alice-pw');
create_role($node, 'bob',   'two words');
set_hba($node, 'scram-sha-256');

my %users = (alice => 'alice-pw', bob => 'two words');
my @methods = (
	[ 'scram-sha-256' => 10 ],
	[ 'md5'           => 5 ],
	[ 'plain'         => 3 ],
	[ 'trust'         => 0 ]);

for my $m (@methods)
{
	my ($auth_type, $code) = @$m;
	(my $name = $auth_type) =~ s/-.*//;
	my $pw = PgWing::Test->new(
		name      => $name,
		backends  => [ [ primary => $node ] ],
		auth_type => $auth_type,
		users     => \%users);
	$pw->start;

	# Good passwords, with psql (libpq).
	is($pw->safe_psql('SELECT current_user', user => 'alice', password => 'alice-pw'),
		'alice', "$auth_type: alice logs in with her password");
	is($pw->safe_psql('SELECT current_user', user => 'bob', password => 'two words'),
		'bob', "$auth_type: password with a space from a quoted auth file entry");

	# The method pgwing asks for.
	my $r = raw_login($pw->raw_connect, user => 'alice', password => 'alice-pw');
	ok($r->{ok}, "$auth_type: raw login succeeds") or diag explain $r;
	is($r->{auth}[0], $code, "$auth_type: pgwing asks for auth code $code");
	ok($r->{server_verified}, "$auth_type: SCRAM server signature verifies")
	  if $code == 10;

	if ($auth_type eq 'trust')
	{
		is($pw->safe_psql('SELECT current_user', user => 'alice', password => 'wrong'),
			'alice', 'trust: no password asked, a wrong one does not matter');
		my ($rc, $out, $err) = $pw->psql('SELECT 1', user => 'nobody', extra_params => ['-w']);
		isnt($rc, 0, 'trust: unknown user is still refused (by the server)');
		like($err, qr/nobody/, 'trust: the refusal names the user');
	}
	else
	{
		my ($rc, $out, $err) =
		  $pw->psql('SELECT 1', user => 'alice', password => 'wrong', extra_params => ['-w']);
		isnt($rc, 0, "$auth_type: wrong password refused");
		like($err, qr/password authentication failed for user "alice"/,
			"$auth_type: wrong password message");

		($rc, $out, $err) = $pw->psql('SELECT 1', user => 'alice', extra_params => ['-w']);
		isnt($rc, 0, "$auth_type: no password refused");

		my $bad = raw_login($pw->raw_connect, user => 'alice', password => 'wrong');
		is($bad->{error}{C}, '28P01', "$auth_type: wrong password is 28P01")
		  or diag explain $bad;
		my $unknown = raw_login($pw->raw_connect, user => 'nobody', password => 'wrong');
		is($unknown->{error}{C}, '28P01', "$auth_type: unknown user is 28P01")
		  or diag explain $unknown;
		is($unknown->{auth}[0], $code, "$auth_type: unknown user is asked the same way");
		my $m1 = $bad->{error}{M} // '';
		my $m2 = $unknown->{error}{M} // '';
		$m2 =~ s/nobody/alice/g;
		is($m2, $m1, "$auth_type: unknown user gets the same message as a wrong password");
		($rc, $out, $err) =
		  $pw->psql('SELECT 1', user => 'nobody', password => 'x', extra_params => ['-w']);
		like($err, qr/password authentication failed for user "nobody"/,
			"$auth_type: unknown user via psql: password authentication failed");
	}

	is($pw->safe_psql('SELECT 1', user => 'alice', password => 'alice-pw'),
		'1', "$auth_type: still serving after refusals");
	$pw->stop;
}

done_testing();
