# rw_split's read-your-writes under a replica that is always a little behind
# (recovery_min_apply_delay = 50ms): write-then-read pairs in one session on
# the read-write port. Not one read may miss the session's own write; most
# should still be served by the replica, after a wait shorter than
# read_your_writes_timeout (100 ms by default). The figures go to the log:
# RYW_PAIRS=1000 for the issue's count.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;
use Time::HiRes qw(time);

my $pairs = $ENV{RYW_PAIRS} // 200;
my ($primary, $replica) =
  primary_with_replicas('primary', ['replica'], sql => 'CREATE TABLE t (id int PRIMARY KEY)');
$replica->append_conf('postgresql.conf', 'recovery_min_apply_delay = 50ms');
$replica->reload;

my $pw = start_pgwing_with(
	backends => [ [ primary => $primary ], [ replica => $replica ] ],
	settings => { rw_split => 'on' },
	up       => [ primary => 'primary', replica => 'replica' ]);

my $sock = $pw->raw_connect;
ok(raw_login($sock)->{ok}, 'logged in');
my ($stale, $on_replica) = (0, 0);
my $start = time();
for my $id (1 .. $pairs)
{
	raw_exchange($sock, 1, query_message("INSERT INTO t VALUES ($id)"));
	my ($row) = data_rows(raw_exchange($sock, 1,
		query_message("SELECT count(*), inet_server_port() FROM t WHERE id = $id")));
	my ($found, $port) = split /\|/, $row;
	$stale++ if $found != 1;
	$on_replica++ if $port == $replica->port;
}
my $elapsed = time() - $start;
is($stale, 0, "$pairs write-then-read pairs: no read missed its own write");
cmp_ok($on_replica, '>', 0, 'reads were served by the replica once it caught up');

my ($st) = grep { $_->{database} eq 'postgres' && $_->{target} eq 'rw' }
  @{ $pw->admin_rows('SHOW STATS') };
note(sprintf('pairs %d, stale reads %d, served by the replica %d (%.1f%%), by the primary %d; '
	  . 'catch-up waits %d, total %.0f ms (%.1f ms each), ended on the primary %d; %.1f ms per pair',
	$pairs, $stale, $on_replica, 100 * $on_replica / $pairs, $st->{primary_reads},
	$st->{catch_up_count}, $st->{catch_up_time} / 1000,
	$st->{catch_up_count} ? $st->{catch_up_time} / 1000 / $st->{catch_up_count} : 0,
	$st->{catch_up_fallbacks}, 1000 * $elapsed / $pairs));
is($st->{replica_reads} + $st->{primary_reads}, $pairs, 'SHOW STATS counted every read');

print $sock pg_message('X');
close $sock;
$pw->stop;
done_testing();
