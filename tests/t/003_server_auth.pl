# pgwing logs in to the server itself with the user's password from the auth
# file, whichever method the server's pg_hba.conf asks for: scram-sha-256,
# md5, password (cleartext) or trust.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;

my $node = new_node('primary', conf => "log_connections = on");
create_role($node, 'sam',   'sam-pw');                          # SCRAM verifier
create_role($node, 'mike',  'mike-pw', encryption => 'md5');    # md5 verifier
create_role($node, 'carol', undef);                             # no password at all

my $pw = PgWing::Test->new(
	backends  => [ [ primary => $node ] ],
	auth_type => 'scram-sha-256',
	users     => { sam => 'sam-pw', mike => 'mike-pw', carol => 'carol-pw', stale => 'old-pw' });
$pw->start;

my @cases = (
	[ 'scram-sha-256', 'sam',   'sam-pw',   qr/identity="sam" method=scram-sha-256/ ],
	[ 'md5',           'mike',  'mike-pw',  qr/identity="mike" method=md5/ ],
	[ 'password',      'sam',   'sam-pw',   qr/identity="sam" method=password/ ],
	[ 'trust',         'carol', 'carol-pw', undef ]);

for my $c (@cases)
{
	my ($hba, $user, $pass, $logged) = @$c;
	set_hba($node, $hba);
	my $off = -s $node->logfile;
	# Its own application_name: a pooled server of an earlier case doesn't fit, pgwing logs in.
	is( $pw->safe_psql(
			'SELECT current_user',
			user             => $user,
			password         => $pass,
			application_name => "case-$hba"),
		$user,
		"server $hba: $user logs in through pgwing");
	if ($logged)
	{
		ok($node->log_contains($logged, $off), "server $hba: the server used $hba")
		  or diag slurp_file($node->logfile, $off);
	}
}

# The server refuses pgwing's login: the client hears about it, pgwing lives on.
create_role($node, 'stale', 'new-pw');
set_hba($node, 'scram-sha-256');
my ($rc, $out, $err) =
  $pw->psql('SELECT 1', user => 'stale', password => 'old-pw', extra_params => ['-w']);
isnt($rc, 0, 'auth file password the server rejects: login fails');
like($err, qr/password authentication failed for user "stale"/,
	'the server\'s refusal reaches the client');
is($pw->safe_psql('SELECT 1', user => 'sam', password => 'sam-pw'), '1', 'still serving');

$pw->stop;
done_testing();
