# A replica's freshness is known only against a primary that answers (#20,
# the soak's "restart" scenario). Here the replica receives no more WAL, and
# the primary commits a row and dies before its next probe: the replica has
# replayed every LSN pgwing ever saw on the primary, yet lacks that row. Once
# the primary has been silent longer than max_replica_lag, SHOW BACKENDS shows
# the replica lagging and a read through the ro port is not served stale: it
# waits (here until hold_timeout). Once the old primary is back, the read has
# the row: the replica covers only positions from before the silence, which
# prove nothing now.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;
use Time::HiRes qw(time);

my ($primary, $replica) =
  primary_with_replicas('primary', ['replica'], sql => 'CREATE TABLE t (id int PRIMARY KEY)');
my $pw = start_pgwing_with(
	backends => [ [ primary => $primary ], [ replica => $replica ] ],
	settings => {
		health_interval => '500ms',
		health_timeout  => '1s',
		max_replica_lag => '1s',
		hold_timeout    => '1s',
	},
	up => [ primary => 'primary', replica => 'replica' ]);

sub replica_lag_ms { return $pw->backends->{replica}{lag_ms}; }

is($pw->safe_psql('SELECT inet_server_port()', target => 'ro'),
	$replica->port, 'caught up: reads on the replica');

# Cut off: its WAL receiver points at a port where nothing listens.
$replica->safe_psql('postgres', "ALTER SYSTEM SET primary_conninfo = 'host=127.0.0.1 port=1'");
$replica->reload;
$replica->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM pg_stat_wal_receiver WHERE status = 'streaming'")
  or die 'the WAL receiver still streams';
is(replica_lag_ms(), '0', 'SHOW BACKENDS: lag_ms 0 (the primary has written nothing since)');

# The commit and the immediate shutdown in one psql run, so that no probe of
# the primary lands between them (each -c is its own transaction).
my $postmaster = $primary->{_pid};
system_log('psql', '-X', '-d', $primary->connstr('postgres'),
	'-c', 'INSERT INTO t VALUES (1)',
	'-c', "COPY (SELECT 1) TO PROGRAM 'kill -QUIT $postmaster'");
wait_until(sub { !-e $primary->data_dir . '/postmaster.pid' }, 10)
  or die 'the primary did not stop';
$primary->_update_pid(0);
my $died = time;

ok(wait_until(sub { (replica_lag_ms() || 0) > 1000 }, 5),
	'SHOW BACKENDS: the replica lags once the primary is silent over max_replica_lag ('
	  . replica_lag_ms() . ' ms)');
my ($rc, $out, $err) = $pw->psql('SELECT count(*) FROM t WHERE id = 1', target => 'ro');
isnt($out, '0', 'no stale read from the replica while the primary is silent');
isnt($rc, 0, 'the read waited for a fresh server (hold_timeout)') or diag "read: $out";
diag(sprintf('the read ended %.1f s after the primary died', time - $died));

# The old primary back (as in the soak's restart round): reads fall back to it.
$primary->start;
is($pw->safe_psql('SELECT count(*), inet_server_port() FROM t WHERE id = 1', target => 'ro'),
	'1|' . $primary->port, 'the primary back: the read has the row');

$pw->stop;
done_testing();
