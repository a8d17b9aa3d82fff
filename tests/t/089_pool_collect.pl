# Pools are collected when unused. A logged-in client naming databases that do
# not exist leaves no pool behind: SHOW POOLS, SHOW STATS and the metrics
# return to their normal rows within a sweep, and a second round of names
# costs no lasting memory. A pool that served clients is kept for
# pool_idle_timeout after its last client and server left, then freed; its
# counters stay in SHOW STATS and the metrics, where totals never go back. A
# pool in use is never collected.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use IPC::Run;
use Test::More;
use Time::HiRes qw(time sleep);

# pgwing at a1ed8dc kept a pool for every name, for good: 1000 names were
# 1000 more SHOW POOLS rows, 500 kB more RSS and 260 kB more /metrics, each
# round.
my $names          = 1000;
my $metrics_port   = PostgreSQL::Test::Cluster::get_free_port();

my $node = new_node('primary');
my $pw = PgWing::Test->new(
	backends  => [ [ primary => $node ] ],
	auth_type => 'trust',
	settings  => {
		server_idle_timeout => '1s',    # pooled servers go soon; sweeps every 250 ms
		stats_period        => '1s',
		metrics_listen      => "127.0.0.1:$metrics_port",
	});
$pw->start;


sub console { return $pw->safe_psql($_[0], dbname => 'pgwing', user => 'admin'); }

# SHOW POOLS as "database/user/target" keys; SHOW STATS as database => total_query_count.
sub pools { return [ map { join '/', (split /\|/)[ 0 .. 2 ] } split /\n/, console('SHOW POOLS') ]; }

sub stats_queries
{
	return { map { my @f = split /\|/; ("$f[0]/$f[1]" => $f[3]) } split /\n/,
		  console('SHOW STATS') };
}

sub metrics
{
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'curl', '-sS', '-f', "http://127.0.0.1:$metrics_port/metrics" ],
		'>', \$out, '2>', \$err, IPC::Run::timeout(30));
	return $out;
}

# Logins naming databases that do not exist: each fails with 3D000.
sub name_databases
{
	my ($prefix) = @_;
	my $refused = 0;
	for my $i (1 .. $names)
	{
		my $s = $pw->raw_connect;
		my $r = raw_login($s, database => "$prefix$i");
		$refused++ if !$r->{ok} && ($r->{error}{C} // '') eq '3D000';
		close $s;
	}
	return $refused;
}

# The normal state: one session of postgres, its pool.
my $session = $pw->background_psql;
$session->query_safe('SELECT 1');
my $user = os_user();
my @normal = ("postgres/$user/rw");
is_deeply(pools(), \@normal, 'SHOW POOLS: the session\'s pool');
my $rss0 = $pw->rss_kb;

my $t0 = time;
is(name_databases('nodb_a'), $names, "$names logins naming missing databases get 3D000");
note sprintf('%d logins in %.1f s', $names, time - $t0);
ok(wait_until(sub { @{ pools() } == @normal }, 3),
	'SHOW POOLS returns to its normal rows within a sweep');
is_deeply(pools(), \@normal, 'only the session\'s pool is left');
my $rss1 = $pw->rss_kb;

is(name_databases('nodb_b'), $names, "$names more names");
ok(wait_until(sub { @{ pools() } == @normal }, 3), 'SHOW POOLS is back to normal again');
my $rss2 = $pw->rss_kb;
note "pgwing RSS: $rss0 kB, $rss1 kB after $names names, $rss2 kB after $names more";
# At a1ed8dc each round kept 1000 pools, about 500 kB; collected, the
# second round reuses what the first one freed.
cmp_rss($rss2 - $rss1, '<', 256, 'the second round leaves no lasting memory (< 256 kB)');
cmp_rss($rss2 - $rss0, '<', 512, 'nor do both (< 512 kB)');

# Counters: no row for the names; other clients are not held up.
sleep 1.5;    # a stats period: the snapshots of the names are dropped too
ok(!(grep { /^nodb_/ } keys %{ stats_queries() }), 'SHOW STATS: no rows for the names');
$t0 = time;
my $m = metrics();
my $took = time - $t0;
is(scalar(() = $m =~ /nodb_/g), 0, 'metrics: no series for the names');
note sprintf('/metrics: %d bytes in %.3f s', length $m, $took);
cmp_ok($took, '<', time_bound(1), 'metrics answer at once');
$t0 = time;
is($pw->safe_psql('SELECT 1'), '1', 'a new client logs in');
$took = time - $t0;
cmp_ok($took, '<', time_bound(2), sprintf('at once (%.2f s)', $took));

# A pool in use is never collected, whatever pool_idle_timeout says.
console("SET pool_idle_timeout = '1s'");
sleep 3;
is_deeply(pools(), \@normal, 'the session\'s pool stays while it is open');
is($session->query_safe('SELECT 2'), '2', 'and serves it');

# Its last client leaves, its server is closed after server_idle_timeout,
# and the pool goes after pool_idle_timeout; its counters stay.
$session->query_safe('SELECT 3');
$session->quit;
my $before = stats_queries()->{'postgres/rw'};
cmp_ok($before, '>=', 4, "SHOW STATS: postgres answered $before queries");
ok(wait_until(sub { @{ pools() } == 0 }, 5), 'the unused pool is freed');
is_deeply(pools(), [], 'SHOW POOLS: no rows');
is(stats_queries()->{'postgres/rw'}, $before, 'SHOW STATS keeps its totals');
like(metrics(), qr/^pgwing_queries_total\{database="postgres",target="rw"\} $before$/m,
	'and so do the metrics');

# A client of it again: a new pool, and the totals go on from there.
is($pw->safe_psql('SELECT 4'), '4', 'a client of postgres after the pool went');
is_deeply(pools(), \@normal, 'a new pool');
cmp_ok(stats_queries()->{'postgres/rw'}, '>', $before, 'SHOW STATS counts on from the totals');

# pool_idle_timeout 0 keeps a pool that logged in; names are still collected.
console("SET pool_idle_timeout = 0");
sleep 2.5;
is_deeply(pools(), \@normal, 'pool_idle_timeout 0: the unused pool is kept');
my $s = $pw->raw_connect;
is(raw_login($s, database => 'nodb_c')->{error}{C}, '3D000', 'a missing database');
close $s;
ok(wait_until(sub { @{ pools() } == @normal }, 3), 'its pool goes all the same');

ok($pw->alive, 'pgwing is alive');
$pw->stop;
done_testing();
