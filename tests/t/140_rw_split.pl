# rw_split: one URL. On the read-write port, provably read-only statements
# (but those that ask which kind of server this is)
# outside a transaction block (and BEGIN READ ONLY blocks) run on the replica;
# everything else on the primary, with the right results; a read that a
# replica refuses as a write (25006: a view over a function that inserts) runs
# again on the primary. Every session reads its own writes: with the
# replica's replay paused, a SELECT after an INSERT sees the row (the primary
# serves it), and reads return to the replica once it has replayed. A session
# that asks for a WAL position (pgwing.min_lsn) is served only by a replica
# that has replayed it. Session state (search_path, a prepared statement,
# SET ROLE) is the same whichever server runs the next statement.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;
use Time::HiRes qw(usleep);

my ($primary, $replica) = primary_with_replicas(
	'primary', ['replica'],
	sql => q{
		CREATE TABLE t (id int PRIMARY KEY, v text);
		CREATE SEQUENCE s;
		CREATE SCHEMA other;
		CREATE TABLE other.t (id int, v text);
		INSERT INTO other.t VALUES (0, 'other');
		CREATE FUNCTION write_one() RETURNS int LANGUAGE sql VOLATILE
		  AS 'INSERT INTO t VALUES (1000, ''by a view'') RETURNING id';
		CREATE VIEW writes AS SELECT write_one() AS id;
		CREATE ROLE low NOLOGIN;
		GRANT SELECT ON t TO low;
	});
my ($pport, $rport) = ($primary->port, $replica->port);

my $pw = start_pgwing_with(
	backends => [ [ primary => $primary ], [ replica => $replica ] ],
	settings => { rw_split => 'on', health_interval => '200ms' },
	up       => [ primary => 'primary', replica => 'replica' ]);

my $bg = $pw->background_psql();
sub q1 { return $bg->query_safe($_[0]); }

is(q1('SELECT inet_server_port()'), $rport, 'a plain SELECT runs on the replica');
is(q1("INSERT INTO t VALUES (1, 'a') RETURNING inet_server_port()"),
	$pport, 'INSERT runs on the primary');
is(q1('SELECT inet_server_port() FROM t WHERE id = 1 FOR UPDATE'),
	$pport, 'SELECT ... FOR UPDATE on the primary');
is(q1("WITH u AS (UPDATE t SET v = 'b' WHERE id = 1 RETURNING id) "
	  . 'SELECT inet_server_port() FROM u'),
	$pport, 'a CTE with UPDATE ... RETURNING on the primary');
is(q1("SELECT nextval('s'), inet_server_port()"), "1|$pport", 'nextval on the primary');
is(q1("SELECT set_config('application_name', 'x', true), inet_server_port()"),
	"x|$pport", 'set_config on the primary');
is(q1('BEGIN; SELECT inet_server_port(); COMMIT;'), $pport,
	'BEGIN ... COMMIT runs whole on the primary');
is(q1('BEGIN READ ONLY; SELECT inet_server_port(); COMMIT;'), $rport,
	'BEGIN READ ONLY ... COMMIT runs whole on the replica');
is(q1('SELECT pg_is_in_recovery(), inet_server_port()'), "f|$pport",
	'pg_is_in_recovery() answers as the primary, as a direct connection would');
is(q1('SHOW transaction_read_only'), 'off', 'so does SHOW transaction_read_only (JDBC asks it)');
is(q1('SELECT id FROM writes'), '1000',
	'a view that writes: refused by the replica (25006), run again on the primary');
is($primary->safe_psql('postgres', 'SELECT v FROM t WHERE id = 1000'),
	'by a view', 'its row is on the primary');

# COPY FROM STDIN is a write that waits for the client's data: nothing may be
# sent behind it (the LSN question goes after its end), and the session reads
# its rows right after.
is($pw->safe_psql("COPY t (id, v) FROM stdin;\n7\tcopied\n\\.\nSELECT v FROM t WHERE id = 7;"),
	'copied', 'COPY FROM STDIN, then a read of what it copied');

# Session state, whichever server runs the next statement.
q1('SET search_path = other, public');
is(q1('SELECT v, inet_server_port() FROM t'), "other|$rport",
	'search_path set on the primary holds on the replica');
q1('PREPARE p AS SELECT v FROM t');
is(q1('EXECUTE p'), 'other', 'a PREPAREd statement runs');
q1('RESET search_path');
q1('SET ROLE low');
is(q1('SELECT current_user, inet_server_port()'), "low|$rport", 'SET ROLE holds on the replica');
q1('RESET ROLE');

# Read your writes, with the replica's replay paused.
$primary->wait_for_catchup($replica, 'replay');
$replica->safe_psql('postgres', 'SELECT pg_wal_replay_pause()');
q1("INSERT INTO t VALUES (2, 'mine')");
is(q1('SELECT count(*), inet_server_port() FROM t WHERE id = 2'),
	"1|$pport", 'replay paused: the session reads its own write, from the primary');

# Another session that never wrote reads from the replica (stale is allowed for it),
# until it asks for the first session's WAL position.
my $lsn = $primary->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');
my $other = $pw->background_psql();
is($other->query_safe('SELECT count(*), inet_server_port() FROM t WHERE id = 2'),
	"0|$rport", 'another session reads the (paused) replica');
# max_staleness: with replay paused behind a write, the replica's data ages;
# a bound below its age sends reads to the primary (after
# read_your_writes_timeout), a bound above it keeps them on the replica.
usleep(600_000);
$other->query_safe("SET pgwing.max_staleness = '300ms'");
is($other->query_safe('SELECT inet_server_port()'), $pport,
	'pgwing.max_staleness below the paused replica\'s age: the primary reads');
$other->query_safe("SET pgwing.max_staleness = '1h'");
is($other->query_safe('SELECT inet_server_port()'), $rport,
	'pgwing.max_staleness = 1h: the replica reads');
$other->query_safe('RESET pgwing.max_staleness');
$other->query_safe("SET pgwing.min_lsn = '$lsn'");
is($other->query_safe('SELECT count(*), inet_server_port() FROM t WHERE id = 2'),
	"1|$pport", 'with pgwing.min_lsn set past the replica it reads the primary');

$replica->safe_psql('postgres', 'SELECT pg_wal_replay_resume()');
$primary->wait_for_catchup($replica, 'replay');
ok( wait_until(
		sub { q1('SELECT inet_server_port() FROM t WHERE id = 2') eq $rport },
		time_bound(10)),
	'once the replica has replayed, the session reads from it again');
is($other->query_safe('SELECT count(*), inet_server_port() FROM t WHERE id = 2'),
	"1|$rport", 'and so does the other session');

# SET pgwing.split = off keeps a session on the primary.
q1('SET pgwing.split = off');
is(q1('SELECT inet_server_port()'), $pport, 'pgwing.split = off: reads on the primary');
q1('RESET pgwing.split');
is(q1('SELECT inet_server_port()'), $rport, 'RESET pgwing.split: back to the replica');

my $sock = $pw->raw_connect;
ok(raw_login($sock)->{ok}, 'raw session logged in');
my $before = $primary->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');
my @got = raw_exchange($sock, 1, query_message("INSERT INTO t VALUES (3, 'raw')"));
my ($status) = grep { $_->[0] eq 'S' && $_->[1] =~ /^pgwing\.commit_lsn\0/ } @got;
ok($status, 'after a write commits the client is told pgwing.commit_lsn');
my ($commit_lsn) = ($status // [ '', '' ])->[1] =~ /^pgwing\.commit_lsn\0([0-9A-F]+\/[0-9A-F]+)\0$/;
ok(defined $commit_lsn, 'pgwing.commit_lsn is an LSN') or diag explain \@got;
is($got[-2][0], 'S', 'pgwing.commit_lsn comes just before ReadyForQuery');
is($primary->safe_psql('postgres',
		"SELECT '$commit_lsn'::pg_lsn > '$before'::pg_lsn AND '$commit_lsn'::pg_lsn <= pg_current_wal_insert_lsn()"),
	't', 'it is past the WAL before the write, and not past the WAL now');

# Pipelines that mix reads and writes are answered in order, each on its server.
@got = raw_exchange($sock, 3,
	query_message('SELECT 1, inet_server_port()'),
	query_message("INSERT INTO t VALUES (4, 'pipelined') RETURNING 2, inet_server_port()"),
	query_message('SELECT 3, count(*) FROM t WHERE id = 4'));
is_deeply([ data_rows(@got) ], [ "1|$rport", "2|$pport", '3|1' ],
	'simple-protocol pipeline: answers in order, the read after the write sees it');
@got = raw_exchange($sock, 3,
	extended_messages('SELECT 1, inet_server_port()'),
	extended_messages("INSERT INTO t VALUES (5, 'x') RETURNING 2, inet_server_port()"),
	extended_messages('SELECT 3, count(*) FROM t WHERE id = 5'));
is_deeply([ data_rows(@got) ], [ "1|$rport", "2|$pport", '3|1' ],
	'extended-protocol pipeline: the same');
print $sock pg_message('X');
close $sock;

# Across pgwing processes: a session on another pgwing's read-only port that
# sets pgwing.min_lsn to a commit's LSN reads that commit.
my $pw2 = start_pgwing_with(
	label    => 'second',
	backends => [ [ primary => $primary ], [ replica => $replica ] ],
	up       => [ primary => 'primary', replica => 'replica' ]);
my $reader = $pw2->background_psql(target => 'ro');
is($reader->query_safe('SELECT inet_server_port()'), $rport, 'second pgwing: its ro port reads the replica');
$replica->safe_psql('postgres', 'SELECT pg_wal_replay_pause()');
my $writer = $pw->raw_connect;
ok(raw_login($writer)->{ok}, 'a writer logged in to the first pgwing');
@got = raw_exchange($writer, 1, query_message("INSERT INTO t VALUES (6, 'elsewhere')"));
($status) = grep { $_->[0] eq 'S' && $_->[1] =~ /^pgwing\.commit_lsn\0/ } @got;
($commit_lsn) = $status->[1] =~ /\0([0-9A-F]+\/[0-9A-F]+)\0$/;
is($reader->query_safe('SELECT count(*), inet_server_port() FROM t WHERE id = 6'),
	"0|$rport", 'second pgwing, ro port: the paused replica has not the row');
$reader->query_safe("SET pgwing.min_lsn = '$commit_lsn'");
is($reader->query_safe('SELECT count(*), inet_server_port() FROM t WHERE id = 6'),
	"1|$pport", 'with pgwing.min_lsn = the commit LSN it reads the row (from the primary)');
$replica->safe_psql('postgres', 'SELECT pg_wal_replay_resume()');
$primary->wait_for_catchup($replica, 'replay');
ok( wait_until(
		sub {
			$reader->query_safe('SELECT count(*), inet_server_port() FROM t WHERE id = 6') eq
			  "1|$rport";
		},
		time_bound(10)),
	'once the replica replayed it, the ro port reads it there');
$reader->quit;
close $writer;
$pw2->stop;

my ($st) = grep { $_->{database} eq 'postgres' && $_->{target} eq 'rw' }
  @{ $pw->admin_rows('SHOW STATS') };
cmp_ok($st->{replica_reads}, '>=', 8, 'SHOW STATS counts reads served by the replica');
cmp_ok($st->{primary_reads}, '>=', 3, '... and reads the primary served');
cmp_ok($st->{replica_refusals}, '>=', 1, '... and the read the replica refused');
cmp_ok($st->{catch_up_count}, '>=', 1, '... and the waits for the replica to catch up');
cmp_ok($st->{catch_up_fallbacks}, '>=', 1, '... that ended on the primary');

$other->quit;
$bg->quit;
$pw->stop;
done_testing();
