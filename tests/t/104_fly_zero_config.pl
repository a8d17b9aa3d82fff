# pgwing --fly <db-app> with no config file: a sidecar that finds the
# database's machines in Fly-shaped DNS (tests/tools/fake_dns.pl), wakes a
# stopped one through a Machines API stand-in (tests/tools/fake_fly_api.pl),
# and logs clients in with auth_query as PGWING_AUTH_USER, whose password is
# libpq's PGPASSWORD. Then scale to zero: with an idle client connected, after
# server_idle_timeout pgwing holds no connection to the database (its own
# pg_stat_activity says so, and SHOW BACKENDS' awake_for), the database
# stops, and the idle client's next query wakes it.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;
use Time::HiRes qw(time usleep);

my $token = 'fly-test-token';
my $node  = auth_query_node('m1', alice => 'alice-pw');
my $port  = $node->port;
my $api   = PgWing::Test::FakeFlyApi->new('104', $token, 'pgapp/m1' => $node);
my $dns   = PgWing::Test::FakeDns->new('104');

sub machine_started
{
	my ($started) = @_;
	$dns->records(($started ? "vms.pgapp.internal. 1 IN TXT \"m1 ams\"\n" : '')
		  . "all.vms.pgapp.internal. 1 IN TXT \"m1 ams\"\n"
		  . "m1.vm.pgapp.internal. 1 IN A 127.0.0.1\n");
}
machine_started(1);

# Fly's variables, the auth_user's password, and quicker timers for the test.
my %env = (
	FLY_REGION                 => 'ams',
	PRIMARY_REGION             => 'ams',
	FLY_NAMESERVER             => '127.0.0.1:' . $dns->port,
	FLY_API_TOKEN              => $token,
	PGWING_FLY_API_URL         => $api->url,
	PGWING_AUTH_USER           => 'pgwing_auth',
	PGPASSWORD                 => 'auth-pw',
	PGWING_SERVER_IDLE_TIMEOUT => '1h',    # 1s once the servers are counted
	PGWING_HEALTH_INTERVAL     => '200ms',
	PGWING_HEALTH_FAIL_COUNT   => 1,
	PGWING_WAKE_TIMEOUT        => '30s');
my $spec = "pgapp port=$port";

# What it runs with, as a config file.
my ($rc, $out, $err);
{
	local @ENV{ keys %env } = values %env;
	($rc, $out, $err) = run_pgwing('--fly', $spec, '--print-config');
}
is($rc, 0, '--fly --print-config exits 0') or diag $err;
like($out, qr/^discover = fly:pgapp port=$port region=""$/m, 'discover = fly: from --fly');
like($out, qr/^region = "ams"$/m,                              'region from FLY_REGION');
like($out, qr/^primary_region = "ams"$/m,                      'primary_region from PRIMARY_REGION');
like($out, qr/^dns_nameserver = "127\.0\.0\.1:\d+"$/m,         'dns_nameserver from FLY_NAMESERVER');
like($out, qr/^auth_user = "pgwing_auth"$/m,                   'auth_user from PGWING_AUTH_USER');
like($out, qr/^health_user = "pgwing_auth"$/m,                 'the probes log in as auth_user');
like($out, qr/^rw_port = "5432"$/m,                            'rw 5432 by default');
like($out, qr/^ro_port = "5433"$/m,                            'ro 5433 by default');
{
	local @ENV{ keys %env } = values %env;
	local $ENV{PGWING_FLY_APP} = $spec;
	my ($rc2, $out2, $err2) = run_pgwing('--check');
	is($rc2, 0, 'PGWING_FLY_APP with no config file: --fly') or diag $err2;
	like($out2, qr/^\Q$spec\E: configuration is valid$/, 'and says so');
}
unlike($out, qr/auth-pw|fly-test-token/,                            'no secret printed');

# The console's user is the one thing in an auth file.
my $pw = PgWing::Test->new(
	users            => { admin => 'admin-pw' },
	console_password => 'admin-pw',
	env              => \%env);
$pw->start(fly => $spec);
ok($pw->wait_for_backend('m1', state => 'up', role => 'primary', region => 'ams'),
	'the machine is found in DNS and probed up, in its region');
is($pw->safe_psql('SELECT current_user', user => 'alice', password => 'alice-pw'),
	'alice', 'a client logs in with its own password, looked up with auth_query');
is($pw->safe_psql('SELECT 1', user => 'alice', password => 'alice-pw', target => 'ro'),
	'1', 'the read-only port serves too');

sub awake_for
{
	return $pw->backends->{m1}{awake_for};
}

# pgwing's connections to the database (its servers and its probe), as the
# database sees them.
sub pgwing_connections { return node_connections($node); }

my $idle = $pw->background_psql(user => 'alice', password => 'alice-pw');
is($idle->query_safe('SELECT 2'), '2', 'an idle client had a server');
my $pinned = $pw->background_psql(user => 'alice', password => 'alice-pw');
$pinned->query_safe('CREATE TEMP TABLE t (i int)');
is(awake_for(), 'clients,pinned,pool,probe',
	'awake_for: clients, a pinned session, the first queries\' pooled servers and the probe');
$pinned->quit;

my ($set_rc, undef, $set_err) = $pw->console("SET server_idle_timeout = '1s'");
is($set_rc, 0, 'server_idle_timeout now 1s') or diag $set_err;

my $deadline = time() + time_bound(15);
usleep(100_000) while pgwing_connections() ne '0' && time() < $deadline;
is(pgwing_connections(), '0', 'after server_idle_timeout: no connection from pgwing');
is(awake_for(), '', 'awake_for: nothing');
ok($pw->wait_for_backend('m1', state => 'asleep'), 'm1 is asleep');
usleep(600_000);
is(pgwing_connections(), '0', 'still none 3 health intervals later');

# Nothing keeps it up: Fly stops the machine, which leaves vms.
$node->stop;
machine_started(0);
my $t0 = time();
is($idle->query_safe('SELECT 3'), '3', 'the idle client\'s next query wakes it');
my $total = time() - $t0;
is($api->starts('pgapp/m1'), 1, 'through the Machines API, once');
like(awake_for(), qr/^clients/, 'awake_for: clients again');
my $start_to_ready = $api->start_to_ready('pgapp/m1');
diag(sprintf('wake: query to row %.0f ms; start to ready %.0f ms; overhead %.0f ms',
		$total * 1000, $start_to_ready * 1000, ($total - $start_to_ready) * 1000));

# A reload builds the same configuration again; the session goes on.
my $pos = $pw->log_position;
$pw->signal('HUP');
ok($pw->wait_for_log(qr/configuration reloaded from --fly \Q$spec\E$/m, $pos),
	'SIGHUP reloads the --fly config');
is($idle->query_safe('SELECT 4'), '4', 'the session goes on after it');
$idle->quit;

$pw->stop;
$node->stop;
done_testing();
