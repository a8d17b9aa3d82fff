# RELOAD from the console adds a backend that SHOW BACKENDS shows within a
# probe interval, and a broken config is rejected while the old one keeps
# serving. The Prometheus endpoint returns well-formed text whose values match
# the console. SHUTDOWN WAIT_FOR_CLIENTS lets an open transaction finish;
# SHUTDOWN stops at once.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use IPC::Run;
use Time::HiRes qw(usleep time);
use Test::More;

my $node1 = new_node('one');
my $node2 = new_node('two');
my $metrics_port = PostgreSQL::Test::Cluster::get_free_port();
my $pw = PgWing::Test->new(
	backends => [ [ pg1 => $node1, region => 'ams' ] ],
	settings => {
		health_interval => '200ms',
		health_user     => os_user(),
		stats_period    => '1s',
		metrics_listen  => "127.0.0.1:$metrics_port",
	});
$pw->start;
ok($pw->wait_for_log(qr/backend pg1: unknown -> up \(primary/), 'pg1 probed up');

# RELOAD adds a backend; it shows up within a probe interval.
$pw->set_backends([ [ pg1 => $node1, region => 'ams' ], [ pg2 => $node2, region => 'fra' ] ]);
$pw->write_config;
my ($rc, $out, $err) = $pw->console('RELOAD');
is($rc, 0, 'RELOAD with a new backend');
my $t0 = time();
my $b;
while (time() - $t0 < time_bound(10))
{
	$b = $pw->backends;
	last if $b->{pg2} && $b->{pg2}{state} eq 'up';
	usleep(50_000);
}
is_deeply([ @{ $b->{pg2} }{qw(host port region role state)} ],
	[ '127.0.0.1', $node2->port, 'fra', 'primary', 'up' ], 'SHOW BACKENDS shows pg2, probed');
my $took = time() - $t0;
cmp_ok($took, '<', time_bound(3), "within a probe interval or so (${took}s)");

# A broken config is rejected whole; the running one stays.
open my $fh, '>>', $pw->config_file or die;
print $fh "[pgwing]\nhold_timeout = soon\n";
close $fh;
($rc, $out, $err) = $pw->console('RELOAD');
like($err, qr/reload failed, the running configuration stays/, 'a broken config: RELOAD fails');
ok($pw->log_contains(qr/reload failed.*pgwing\.ini:\d+: .*hold_timeout/),
	'the log has file:line and the reason');
is(scalar keys %{ $pw->backends }, 2, 'both backends still there');

# Two primaries on one timeline: writes go nowhere until it resolves, so put
# pg1 back alone before sending traffic.
$pw->set_backends([ [ pg1 => $node1, region => 'ams' ] ]);
$pw->write_config;
($rc) = $pw->console('RELOAD');
is($rc, 0, 'RELOAD back to one backend');
ok(!exists $pw->backends->{pg2}, 'pg2 is gone from SHOW BACKENDS');
my $served = '';
for (1 .. 50)
{
	my ($prc, $pout) = $pw->psql('SELECT 7', timeout => 10);
	$served = $pout;
	last if $prc == 0;
	usleep(100_000);
}
is($served, '7', 'queries are served after the reloads');

# Metrics: well-formed text, values as the console shows them.
sub scrape
{
	my ($body, $cerr) = ('', '');
	IPC::Run::run([ 'curl', '-sS', '-f', "http://127.0.0.1:$metrics_port/metrics" ],
		'>', \$body, '2>', \$cerr);
	die "curl failed: $cerr" if $?;
	return $body;
}
my $text = scrape();

# The text format, checked line by line.
my ($type_of, $samples_of, $problems) = parse_metrics($text);
my %type    = %$type_of;
my %samples = %$samples_of;
is_deeply($problems, [], 'metrics: valid Prometheus text format');
for my $family (
	qw(pgwing_clients pgwing_servers pgwing_backend_up pgwing_backend_lag_bytes
	pgwing_backend_rtt_seconds pgwing_queries_total pgwing_transactions_total
	pgwing_bytes_total pgwing_wait_seconds pgwing_failovers_total pgwing_wakes_total
	pgwing_holds_total))
{
	ok($type{$family}, "metrics: $family");
}
is($type{pgwing_wait_seconds}, 'histogram', 'pgwing_wait_seconds is a histogram');
is($samples{'pgwing_wait_seconds_bucket{database="postgres",target="rw",le="+Inf"}'},
	$samples{'pgwing_wait_seconds_count{database="postgres",target="rw"}'},
	'histogram: +Inf bucket = count');
is($samples{'pgwing_backend_up{backend="pg1",region="ams",role="primary"}'},
	1, 'pgwing_backend_up for pg1');
like($samples{'pgwing_backend_rtt_seconds{backend="pg1"}'}, qr/^\d+\.\d+$/,
	'pgwing_backend_rtt_seconds for pg1');

# Values match SHOW STATS taken right after (no traffic in between).
$text = scrape();
my ($stats) = grep { $_->{database} eq 'postgres' && $_->{target} eq 'rw' } @{ $pw->admin_rows('SHOW STATS') };
my %now = map { /^(\S+) (\S+)$/ ? ($1 => $2) : () } split /\n/, $text;
is($now{'pgwing_queries_total{database="postgres",target="rw"}'},
	$stats->{total_query_count}, 'pgwing_queries_total = SHOW STATS total_query_count');
is($now{'pgwing_transactions_total{database="postgres",target="rw"}'},
	$stats->{total_xact_count}, 'pgwing_transactions_total = total_xact_count');
is($now{'pgwing_bytes_total{database="postgres",target="rw",direction="in"}'},
	$stats->{total_received}, 'pgwing_bytes_total in = total_received');
is($now{'pgwing_clients{state="admin"}'}, 0, 'no console client while scraping');
# The servers of the clients that left are pooled: SHOW SERVERS and metrics agree.
my $pooled = grep { $_->{backend} eq 'pg1' && $_->{state} eq 'idle' } @{ $pw->admin_rows('SHOW SERVERS') };
cmp_ok($pooled, '>=', 1, 'SHOW SERVERS: a pooled server on pg1');
is($now{'pgwing_servers{backend="pg1",state="idle"}'}, $pooled,
	'pgwing_servers idle = the pooled servers');

# SHOW STATS averages come from the stats_period snapshots: the first one
# after some traffic shows a rate.
$pw->safe_psql('SELECT 1; SELECT 2; SELECT 3;') for 1 .. 5;
my $avg      = 0;
my $deadline = time() + time_bound(5);
while ($avg == 0 && time() < $deadline)
{
	($stats) =
	  grep { $_->{database} eq 'postgres' && $_->{target} eq 'rw' } @{ $pw->admin_rows('SHOW STATS') };
	$avg = $stats->{avg_query_count};
	usleep(100_000);
}
cmp_ok($avg, '>', 0, "SHOW STATS: a per-second query average ($avg)");

# SHUTDOWN WAIT_FOR_CLIENTS: the open transaction finishes, then pgwing stops.
$node1->safe_psql('postgres', 'CREATE TABLE drained (v int)');
my $session = $pw->background_psql;
$session->query_safe('BEGIN');
$session->query_safe('INSERT INTO drained VALUES (1)');
($rc, $out, $err) = $pw->console('SHUTDOWN WAIT_FOR_CLIENTS');
is($rc, 0, 'SHUTDOWN WAIT_FOR_CLIENTS');
my ($nrc) = $pw->psql('SELECT 1', timeout => 5);
isnt($nrc, 0, 'no new clients while draining');
ok($pw->alive, 'pgwing waits for the open transaction');
$session->query_safe('INSERT INTO drained VALUES (2)');
$session->query_safe('COMMIT');
$session->quit;
$deadline = time() + time_bound(10);
usleep(50_000) while $pw->alive && time() < $deadline;
ok(!$pw->alive, 'pgwing stopped once the last client left');
is($pw->exit_status, 0, 'with exit status 0');
is($node1->safe_psql('postgres', 'SELECT count(*) FROM drained'),
	'2', 'the transaction committed');

# SHUTDOWN: at once.
$pw->start;
($rc, $out, $err) = $pw->console('SHUTDOWN');
is($rc, 0, 'SHUTDOWN answers before stopping');
$deadline = time() + time_bound(10);
usleep(50_000) while $pw->alive && time() < $deadline;
ok(!$pw->alive, 'SHUTDOWN stopped pgwing');

done_testing();
