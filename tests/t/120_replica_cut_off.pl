# A replica cut off from its primary (its WAL receiver stops: primary_conninfo
# pointed at a dead port) has replayed all it received, so its own replay
# delay says 0, while the primary keeps writing. pgwing measures its lag
# against the primary's LSN: within a bounded time new read-only clients go to
# the primary fallback and never read stale data; SHOW BACKENDS shows the lag;
# once primary_conninfo is restored and it has caught up it serves reads again.
# Then the bytes bound alone (max_replica_lag an hour) excludes it too, and
# with ro_fallback = error new read-only clients are refused, never served stale.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;
use Time::HiRes qw(usleep time);

my ($primary, $replica) =
  primary_with_replicas('primary', ['replica'], sql => 'CREATE TABLE t (id int PRIMARY KEY)');

my $pw = start_pgwing_with(
	backends => [ [ primary => $primary ], [ replica => $replica ], ],
	settings => {
		health_timeout  => '1s',
		max_replica_lag => '2s',
	},
	up => [ replica => 'replica', primary => 'primary' ]);

my $id = 0;

# Commit a new row on the primary (directly), then read it through the ro
# port: "found|port" of the server that answered.
sub write_then_read
{
	$id++;
	$primary->safe_psql('postgres', "INSERT INTO t VALUES ($id)");
	return $pw->safe_psql("SELECT count(*), inet_server_port() FROM t WHERE id = $id",
		target => 'ro');
}

# The replica's row in SHOW BACKENDS: { lag_bytes, lag_ms } ('' when unknown).
sub replica_lag
{
	for my $line (split /\n/,
		$pw->safe_psql('SHOW BACKENDS', dbname => 'pgwing', user => 'admin'))
	{
		my @f = split /\|/, $line, -1;
		return { lag_bytes => $f[7], lag_ms => $f[8] } if $f[0] eq 'replica';
	}
	die 'no replica in SHOW BACKENDS';
}

# Write and read until the ro port is served by $want (seconds taken) or time runs out (undef).
sub wait_for_reads_on
{
	my ($want, $timeout) = @_;
	my $start = time();
	while (time() - $start < $timeout)
	{
		# With ro_fallback = error a read is refused until the replica is usable again.
		my ($found, $port) = split /\|/, eval { write_then_read() } // '';
		return time() - $start if ($port // 0) == $want->port;
		usleep(50_000);
	}
	return undef;
}

sub set_primary_conninfo
{
	my ($value) = @_;
	my $sql =
	  defined $value
	  ? "ALTER SYSTEM SET primary_conninfo = '$value'"
	  : 'ALTER SYSTEM RESET primary_conninfo';
	$replica->safe_psql('postgres', $sql);
	$replica->reload;
}

# Stop the replica's WAL receiver: point it at a port where nothing listens.
sub cut_off
{
	set_primary_conninfo('host=127.0.0.1 port=1');
	$replica->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM pg_stat_wal_receiver WHERE status = 'streaming'")
	  or die 'the WAL receiver still streams';
}

sub reconnect
{
	set_primary_conninfo(undef);
	$primary->wait_for_catchup($replica, 'replay');
}

my ($found, $port) = split /\|/, write_then_read();
is($port, $replica->port, 'caught up: reads on the replica');

# --- The time bound --------------------------------------------------------

cut_off();
my $took = wait_for_reads_on($primary, time_bound(15));
ok(defined $took, 'a cut-off replica gets no new read clients');
# max_replica_lag is 2 s; the lag is known to at most a probe interval or two.
cmp_ok($took // 99, '<', time_bound(4),
	'lag exclusion time ' . sprintf('%.2f', $took // -1) . ' s');
diag(sprintf('lag exclusion time (max_replica_lag 2s, health_interval 200ms): %.2f s', $took))
  if defined $took;

my $lag = replica_lag();
cmp_ok($lag->{lag_ms},    '>', 2000, "SHOW BACKENDS: lag_ms over the limit ($lag->{lag_ms})");
cmp_ok($lag->{lag_bytes}, '>', 0,    "SHOW BACKENDS: lag_bytes ($lag->{lag_bytes})");

# Every read after the exclusion sees the row committed just before it.
my @stale;
for my $i (1 .. 20)
{
	($found, $port) = split /\|/, write_then_read();
	push @stale, "$id on $port" if $found ne '1' || $port != $primary->port;
}
is_deeply(\@stale, [], 'no stale read once excluded: 20 of 20 on the primary, up to date');

# Reconnected and caught up: it serves reads again.
reconnect();
ok(defined wait_for_reads_on($replica, time_bound(10)), 'caught up again: reads return to it');
is(replica_lag()->{lag_ms}, '0', 'SHOW BACKENDS: lag_ms 0 again');

# --- The bytes bound alone -------------------------------------------------

$pw->set(max_replica_lag => '1h', max_replica_lag_bytes => '1MB');
$pw->write_config;
my $offset = $pw->log_position;
$pw->signal('HUP');
ok($pw->wait_for_log(qr/configuration reloaded/, $offset),
	'reloaded: max_replica_lag 1h, max_replica_lag_bytes 1MB');

($found, $port) = split /\|/, write_then_read();
is($port, $replica->port, 'caught up: reads on the replica');
cut_off();
# ~5 MB of WAL while it is cut off: far under an hour, far over 1 MB.
$primary->safe_psql('postgres',
	"CREATE TABLE pad AS SELECT g, repeat('x', 500) AS x FROM generate_series(1, 10000) g");
ok(defined wait_for_reads_on($primary, time_bound(10)),
	'the bytes bound alone excludes the cut-off replica');
$lag = replica_lag();
cmp_ok($lag->{lag_bytes}, '>', 1024 * 1024, "SHOW BACKENDS: lag_bytes ($lag->{lag_bytes})");
cmp_ok($lag->{lag_ms}, '<', 3600 * 1000, "under the time bound ($lag->{lag_ms} ms)");

reconnect();
ok(defined wait_for_reads_on($replica, time_bound(10)), 'caught up again: reads return to it');

# --- ro_fallback = error: refused rather than stale --------------------------

$pw->set(
	max_replica_lag       => '2s',
	max_replica_lag_bytes => '0',
	ro_fallback           => 'error',
	hold_timeout          => '1s');
$pw->write_config;
$offset = $pw->log_position;
$pw->signal('HUP');
ok($pw->wait_for_log(qr/configuration reloaded/, $offset), 'reloaded: ro_fallback error');

cut_off();
my ($rc, $out, $err);
my $start = time();
while (time() - $start < time_bound(15))
{
	$id++;
	$primary->safe_psql('postgres', "INSERT INTO t VALUES ($id)");
	($rc, $out, $err) =
	  $pw->psql("SELECT count(*) FROM t WHERE id = $id", target => 'ro', timeout => 30);
	last if $rc != 0;
	usleep(50_000);
}
isnt($rc, 0, 'with ro_fallback = error, a cut-off replica: new ro clients are refused');
like($err, qr/no server for reads available/, 'refused as when no replica is usable');
my @answers;
for my $i (1 .. 5)
{
	$id++;
	$primary->safe_psql('postgres', "INSERT INTO t VALUES ($id)");
	($rc, $out, $err) =
	  $pw->psql("SELECT count(*) FROM t WHERE id = $id", target => 'ro', timeout => 30);
	push @answers, $rc == 0 ? "read $out" : 'refused';
}
is_deeply(\@answers, [ ('refused') x 5 ], 'never a stale read: 5 of 5 refused');

reconnect();
ok(defined wait_for_reads_on($replica, time_bound(10)), 'caught up again: reads return to it');

$pw->stop;
done_testing();
