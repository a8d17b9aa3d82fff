# pgbench through pgwing: -i, then 10 s each of the simple, extended and
# prepared query protocols with no failed transaction; then prepared with
# more clients than default_pool_size, lowered under the servers the pool
# holds, sessions handing servers to each other at their idle points (prepared
# statements replayed), still without a failure.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;

my $node = new_node('primary');
my $pw = PgWing::Test->new(backends => [ [ primary => $node ] ], auth_type => 'trust');
$pw->start;
my $connstr = $pw->connstr;
my $secs = $ENV{PGWING_PGBENCH_SECONDS} // 10;

sub pgbench
{
	my @args = @_;
	my ($out, $err) = ('', '');
	my $ok = eval {
		IPC::Run::run([ 'pgbench', @args, $connstr ],
			'<', \undef, '>', \$out, '2>', \$err,
			IPC::Run::timeout($secs + 120));
		1;
	};
	return ($ok ? $? >> 8 : -1, $out, $err . ($ok ? '' : $@));
}

my ($rc, $out, $err) = pgbench('-i', '-s', '2', '-q');
is($rc, 0, 'pgbench -i through pgwing') or diag $err;
is($node->safe_psql('postgres', 'SELECT count(*) FROM pgbench_accounts'),
	'200000', 'pgbench -i loaded 200000 accounts (via COPY)');

# Clients and threads. Under the cap, each client has a thread of its own:
# pgbench prepares a statement with PQprepare, which blocks its thread, so a
# thread running several clients can wait for a server for one of them while
# another of them holds one inside a transaction it can't finish. With fewer
# servers than clients - threads + 1, that wait can go round and no pool that
# keeps to its cap can end it: the test would measure pgbench, not pgwing.
my @runs = map { [ $_, 4, 2 ] } qw(simple extended prepared);
push @runs, [ 'prepared', 6, 6, 'default_pool_size = 2' ];
for my $run (@runs)
{
	my ($mode, $clients, $threads, $set) = @$run;
	if ($set)
	{
		$pw->safe_psql("SET $set", dbname => 'pgwing', user => 'admin');
		$mode .= " -c $clients ($set)";
	}
	($rc, $out, $err) =
	  pgbench('-M', $run->[0], '-c', $clients, '-j', $threads, '-T', $secs, '-n');
	is($rc, 0, "pgbench -M $mode exits 0") or diag "$out\n$err";
	my ($processed) = $out =~ /number of transactions actually processed: (\d+)/;
	my ($failed)    = $out =~ /number of failed transactions: (\d+)/;
	ok(defined $processed && $processed > 0, "pgbench -M $mode processed transactions")
	  or diag $out;
	is($failed, 0, "pgbench -M $mode: 0 failed transactions") or diag "$out\n$err";
	my ($tps) = $out =~ /tps = ([\d.]+)/;
	note "pgbench -M $mode: " . ($processed // '?') . " transactions, tps " . ($tps // '?');
	unlike($err, qr/error|abort/i, "pgbench -M $mode: no errors reported");
}

# The balance bookkeeping is consistent: every transaction was applied whole.
is( $node->safe_psql('postgres',
		'SELECT (SELECT sum(abalance) FROM pgbench_accounts) = (SELECT sum(delta) FROM pgbench_history)'),
	't',
	'accounts and history agree');

$pw->stop;
done_testing();
