# PGWING_<SETTING> environment variables override the config file.
use strict;
use warnings;
use IO::Socket::INET;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;

my $node = new_node('primary');
create_role($node, 'alice', 'alice-pw');
my $file_port = PostgreSQL::Test::Cluster::get_free_port();
my $env_port  = PostgreSQL::Test::Cluster::get_free_port();
my $pw = PgWing::Test->new(
	backends  => [ [ primary => $node ] ],
	auth_type => 'scram-sha-256',
	users     => { alice => 'alice-pw' },
	rw_port   => $env_port,                        # where start() waits
	settings  => { rw_port => $file_port },        # what the file says
	env => { PGWING_RW_PORT => $env_port, PGWING_AUTH_TYPE => 'trust' });
$pw->start;
like(slurp_file($pw->config_file), qr/rw_port = $file_port/, 'the file says one port');
ok(!IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $file_port, Proto => 'tcp'),
	'nothing listens on the file\'s port');
is($pw->safe_psql('SELECT current_user', user => 'alice'),
	'alice', 'PGWING_RW_PORT and PGWING_AUTH_TYPE=trust (no password asked) are in effect');
my $r = raw_login($pw->raw_connect, user => 'alice');
is($r->{auth}[0], 0, 'no password requested: trust from the environment');
$pw->stop;
done_testing();
