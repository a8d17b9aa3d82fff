# The HTTP endpoints an orchestrator probes, on metrics_listen:
#
# - /livez: 200 while the loop answers;
# - /readyz: 503 with no primary (the body says so), 200 with a primary up,
#   200 "holding" during a failover younger than hold_timeout (clients are
#   held, not refused), 503 after it, 503 "draining" from SIGTERM on;
# - /status: JSON (JSON::PP parses it) whose backends and pools are the rows
#   of SHOW BACKENDS and SHOW POOLS.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep time);

my $metrics_port = PostgreSQL::Test::Cluster::get_free_port();
my %settings = (
	health_interval   => '200ms',
	health_timeout    => '1s',
	health_fail_count => 2,
	health_user       => os_user(),
	hold_timeout      => '4s',
	metrics_listen    => "127.0.0.1:$metrics_port",
);

# Polls /readyz until its status is $want; returns the last status and body.
sub wait_ready
{
	my ($pw, $want, $seconds) = @_;
	my $deadline = time + time_bound($seconds);
	my ($status, $body);
	while (1)
	{
		($status, $body) = $pw->http_get('/readyz');
		return ($status, $body) if $status == $want || time > $deadline;
		sleep 0.1;
	}
}

# No primary at all: not ready, and the body says why.
my $nowhere = PgWing::Test->new(
	name     => 'nowhere',
	backends => [ [ gone => 'host=127.0.0.1 port=1' ] ],
	settings => {%settings});
$nowhere->start;
ok($nowhere->wait_for_log(qr/backend gone: unknown -> down/), 'the only backend is down');
my ($status, $body) = $nowhere->http_get('/livez');
is($status, 200, '/livez: 200 with no backend');
is($body, "ok\n", '/livez: body ok');
($status, $body) = $nowhere->http_get('/readyz');
is($status, 503, '/readyz: 503 with no primary');
like($body, qr/^not ready: no primary/, '/readyz: the body says there is no primary');
($status, $body) = $nowhere->http_get('/nope');
is($status, 404, 'an unknown path: 404');
$nowhere->stop;

# A primary.
my $node = new_node('primary');
my $pw = PgWing::Test->new(backends => [ [ pg1 => $node, region => 'ams' ] ],
	settings => {%settings});
$pw->start;
ok($pw->wait_for_log(qr/backend pg1: unknown -> up \(primary/), 'pg1 probed up');
($status, $body) = wait_ready($pw, 200, 10);
is($status, 200, '/readyz: 200 with a primary');
is($body, "ready: primary pg1 is up\n", '/readyz: the body names the primary');

# /status against the console, with a pool to show.
is($pw->safe_psql('SELECT 1'), '1', 'a query makes a pool');
($status, $body) = $pw->http_get('/status');
is($status, 200, '/status: 200');
my $st = eval { JSON::PP->new->decode($body) };
ok($st, '/status: JSON::PP parses it') or diag("$@: $body");
is($st->{ready},    JSON::PP::true,  '/status: ready');
is($st->{draining}, JSON::PP::false, '/status: not draining');
my @console = map { [ split /\|/, $_, -1 ] }
  split /\n/, $pw->safe_psql('SHOW BACKENDS', dbname => 'pgwing', user => 'admin');
is(scalar @{ $st->{backends} }, scalar @console, '/status: as many backends as SHOW BACKENDS');
my ($b, $c) = ($st->{backends}[0], $console[0]);
is_deeply([ @$b{qw(name host port region role state clients awake_for)} ],
	[ @$c[ 0 .. 5, 10, 15 ] ], '/status: the backend as SHOW BACKENDS shows it');
like($b->{rtt_ms}, qr/^[\d.]+$/, '/status: rtt_ms is a number');
my @pools = map { [ split /\|/, $_, -1 ] }
  split /\n/, $pw->safe_psql('SHOW POOLS', dbname => 'pgwing', user => 'admin');
is(scalar @{ $st->{pools} }, scalar @pools, '/status: as many pools as SHOW POOLS');
my ($p) = grep { $_->{target} eq 'rw' } @{ $st->{pools} };
my ($q) = grep { $_->[2] eq 'rw' } @pools;
is_deeply([ @$p{qw(database user target cl_waiting sv_idle pool_mode)} ],
	[ @$q[ 0, 1, 2, 4, 7, 10 ] ], '/status: the pool as SHOW POOLS shows it');
is($p->{cl_held_for}, undef, '/status: nobody held: cl_held_for null');

# Failover: the primary stops. Within hold_timeout clients are held, and the
# endpoint stays ready (an orchestrator should not pull every instance for
# a failover that is expected to end); after it, not ready.
my $off = $pw->log_position;
$node->stop('immediate');
ok($pw->wait_for_log(qr/backend pg1: up -> down/, $off), 'pg1 down');
my $down_at = time;
($status, $body) = $pw->http_get('/readyz');
is($status, 200, '/readyz: 200 during a failover hold younger than hold_timeout');
like($body, qr/^ready: holding clients: primary pg1 down for \d+ ms/, '/readyz: the body says why');
($status, $body) = $pw->http_get('/status');
$st = decode_json($body);
like($st->{reason}, qr/holding clients/, '/status: the same reason');
is($st->{backends}[0]{state}, 'down', '/status: pg1 down');
($status, $body) = wait_ready($pw, 503, 10);
is($status, 503, '/readyz: 503 once the primary has been gone for hold_timeout');
cmp_ok(time - $down_at, '>=', 3, '... not before hold_timeout');
like($body, qr/^not ready: no primary: pg1 down for \d+ ms/, '/readyz: the body says why');

$node->start;
($status, $body) = wait_ready($pw, 200, 20);
is($status, 200, '/readyz: 200 again once pg1 is back');

# Draining: not ready at once, while still alive (and accepting for the grace).
# Long enough for the checks below to run within it on a loaded machine.
$pw->set(shutdown_grace => '5s');
$pw->write_config;
$off = $pw->log_position;
$pw->signal('HUP');
ok($pw->wait_for_log(qr/reloaded/, $off), 'shutdown_grace reloaded');
$pw->signal('TERM');
($status, $body) = wait_ready($pw, 503, 5);
is($status, 503, '/readyz: 503 as soon as SIGTERM is received');
is($body, "draining: pgwing is shutting down\n", '/readyz: the body says it is draining');
($status, $body) = $pw->http_get('/livez');
is($status, 200, '/livez: still 200 while draining');
$st = decode_json(($pw->http_get('/status'))[1]);
is($st->{draining}, JSON::PP::true, '/status: draining');
is($pw->safe_psql('SELECT 2'), '2', 'a new client is still served within shutdown_grace');

my $deadline = time + time_bound(10);
sleep 0.1 while $pw->alive && time < $deadline;
ok(!$pw->alive, 'pgwing exits after the grace with no client left');
is($pw->exit_status, 0, 'exit code 0');

done_testing();
