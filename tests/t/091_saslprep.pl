# SCRAM passwords are SASLprep'ed (RFC 4013) as Postgres does: a role whose
# password is 'IX-Ⅸ' (ROMAN NUMERAL NINE, which SASLprep maps to "IX") logs in
# through pgwing with psql, pgwing verifying the client against a plaintext
# auth file entry and logging in to the server with it; and pgwing logs in to
# the server with that password when the client sent it in cleartext.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;

# UTF-8 bytes, as psql and the auth file carry them.
my $password = "IX-\xe2\x85\xa8";

my $node = new_node('primary', conf => "log_connections = on");
create_role($node, 'ix', $password);
set_hba($node, 'scram-sha-256');

for my $auth_type ('scram-sha-256', 'plain')
{
	(my $name = $auth_type) =~ s/-.*//;
	my $pw = PgWing::Test->new(
		name      => $name,
		backends  => [ [ primary => $node ] ],
		auth_type => $auth_type,
		users     => { ix => $password });
	$pw->start;
	my $off = -s $node->logfile;
	my ($rc, $out, $err) = $pw->psql('SELECT current_user', user => 'ix', password => $password);
	is($rc, 0, "$auth_type: 'IX-\\x{2168}' logs in through pgwing") or diag $err;
	is($out, 'ix', "$auth_type: as the role");
	ok($node->log_contains(qr/identity="ix" method=scram-sha-256/, $off),
		"$auth_type: pgwing logged in to the server with SCRAM");
	($rc, $out, $err) =
	  $pw->psql('SELECT 1', user => 'ix', password => 'IX-IX', extra_params => ['-w']);
	if ($auth_type eq 'plain')
	{
		# Cleartext is compared as given; the server, with SCRAM, takes the prepared form.
		isnt($rc, 0, 'plain: another spelling is not the auth file password');
	}
	else
	{
		is($rc, 0, 'scram-sha-256: the prepared spelling is the same password, as in Postgres')
		  or diag $err;
	}
	$pw->stop;
}

done_testing();
