# A session moves to a server whose replay of its state is cut short by the
# server going away (terminated, shut down): nothing of the client's ran
# there, so the session tries another server, as for a failed connect, and its
# request is answered. Before, the client got FATAL 08006 "session state could
# not be carried" although the state was fine. Deterministic: the replayed
# PREPARE waits for a lock the test holds, and the test terminates it there.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;

my $primary = new_node('primary');
$primary->safe_psql('postgres', 'CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2)');

# Every idle point gives the server back: the next request gets another, its state replayed.
my $pw = start_pgwing_with(
	backends => [ [ primary => $primary ] ],
	settings => { server_release => 'always' },
	up       => [ primary => 'primary' ]);

my $sock = $pw->raw_connect;
ok(raw_login($sock)->{ok}, 'logged in');
raw_exchange($sock, 1, query_message('PREPARE p AS SELECT count(*) FROM t'));
raw_exchange($sock, 1, query_message('SELECT 1'));

# The replay of PREPARE p on the next server waits for this lock.
my $locker = $primary->background_psql('postgres');
$locker->query_safe('BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE');
print $sock query_message('EXECUTE p');
my $waiting = q{SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock'
  AND query LIKE 'PREPARE p %'};
my $pid;
ok(wait_until(sub { ($pid = $primary->safe_psql('postgres', $waiting)) ne '' }, time_bound(10)),
	'the replay of PREPARE p waits for the lock');
$primary->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
# The session tries again: its next server waits for the lock too.
ok( wait_until(
		sub { my $p = $primary->safe_psql('postgres', $waiting); $p ne '' && $p ne $pid },
		time_bound(10)),
	'terminated mid-replay: the session tried another server');
$locker->query_safe('COMMIT');
$locker->quit;

my @got = eval { raw_exchange($sock, 1) };
is($@, '', 'the session got its answer (no FATAL, no close)');
is_deeply([ map { $_->[0] eq 'E' ? error_fields($_->[1])->{M} : () } @got ], [],
	'the client got no error');
is_deeply([ data_rows(@got) ], ['2'], 'EXECUTE p answered, with the state carried');
is($pw->safe_psql('SELECT 1'), '1', 'pgwing serves on');

close $sock;
$pw->stop;
done_testing();
