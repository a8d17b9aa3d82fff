# The auth file may hold only the server's verifier instead of a password:
# a SCRAM secret copied from pg_authid (pgwing logs in to the server with the
# client's SCRAM proof keys) or an md5 hash (md5 on both sides).
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;

my $node = new_node('primary', conf => "log_connections = on");
create_role($node, 'alice', 'alice-pw');
create_role($node, 'mia',   'mia-pw', encryption => 'md5');
my $scram = role_secret($node, 'alice');
my $md5   = role_secret($node, 'mia');
like($scram, qr/^SCRAM-SHA-256\$4096:/, 'alice has a SCRAM secret');
like($md5,   qr/^md5[0-9a-f]{32}$/,      'mia has an md5 hash');

# SCRAM secret only, SCRAM on both sides.
set_hba($node, 'scram-sha-256');
my $pw = PgWing::Test->new(
	name      => 'scram',
	backends  => [ [ primary => $node ] ],
	auth_type => 'scram-sha-256',
	users     => { alice => $scram });
$pw->start;
unlike(slurp_file($pw->auth_file), qr/alice-pw/, 'no plaintext password in the auth file');
for my $i (1 .. 2)
{
	my $off = -s $node->logfile;
	# Each its own application_name: login 1's pooled server doesn't fit login 2.
	is( $pw->safe_psql(
			'SELECT current_user',
			user             => 'alice',
			password         => 'alice-pw',
			application_name => "login-$i"),
		'alice',
		"SCRAM secret only: login $i through pgwing");
	ok($node->log_contains(qr/identity="alice" method=scram-sha-256/, $off),
		"SCRAM secret only: login $i reached the server with SCRAM");
}
my $r = raw_login($pw->raw_connect, user => 'alice', password => 'alice-pw');
ok($r->{ok} && $r->{server_verified}, 'SCRAM secret only: pgwing proves it knows the secret')
  or diag explain $r;
$r = raw_login($pw->raw_connect, user => 'alice', password => 'wrong');
is($r->{error}{C}, '28P01', 'SCRAM secret only: wrong password is 28P01');
my ($rc, $out, $err) =
  $pw->psql('SELECT 1', user => 'alice', password => 'wrong', extra_params => ['-w']);
like($err, qr/password authentication failed for user "alice"/, 'wrong password via psql');
$pw->stop;

# md5 hash only, md5 on both sides.
set_hba($node, 'md5');
my $pw5 = PgWing::Test->new(
	name      => 'md5',
	backends  => [ [ primary => $node ] ],
	auth_type => 'md5',
	users     => { mia => $md5 });
$pw5->start;
my $off = -s $node->logfile;
is($pw5->safe_psql('SELECT current_user', user => 'mia', password => 'mia-pw'),
	'mia', 'md5 hash only: login through pgwing');
ok($node->log_contains(qr/identity="mia" method=md5/, $off), 'md5 hash only: server used md5');
$r = raw_login($pw5->raw_connect, user => 'mia', password => 'wrong');
is($r->{error}{C}, '28P01', 'md5 hash only: wrong password is 28P01');
$pw5->stop;

done_testing();
