# Holding clients through failover: the primary is killed (immediate stop)
# and a replica promoted 2 s later while pgbench runs through pgwing.
#
# - Reads (pgbench -S, 16 clients): no failed transaction, no aborted client,
#   throughput back within the progress report's second of the promotion.
# - Writes (pgbench -N, 16 clients): errors only for transactions in flight at
#   the kill (at most one per client); every transaction pgbench counted is on
#   the new primary (replication is synchronous, so "committed" means the
#   replica has it too: anything else would be the database's loss, not ours).
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;
use IPC::Run;
use Time::HiRes qw(usleep time);

my $clients = 16;

# One primary/replica pair per run; the replica is promoted mid-run.
sub failover_run
{
	my (%o) = @_;
	my $tag = $o{tag};
	my ($old, $new) = primary_with_replicas("old_$tag", ["new_$tag"], max_connections => 60);
	# Synchronous: a commit pgbench sees is on the replica before it is acknowledged.
	$old->append_conf('postgresql.conf', "synchronous_standby_names = '*'");
	$old->reload;

	my $pw = start_pgwing_with(
		name     => "pw_$tag",
		backends => [ [ old => $old ], [ new => $new ] ],
		settings => {
			health_timeout    => '1s',
			health_fail_count => 2,
			hold_timeout      => '30s',
		},
		up    => [ old => 'primary', new => 'replica' ],
		label => "$tag: ");

	my @init = ('pgbench', '-i', '-q', '-s', '1', $pw->connstr);
	my ($iout, $ierr) = ('', '');
	IPC::Run::run(\@init, '>', \$iout, '2>', \$ierr) or die "pgbench -i: $ierr";
	$old->wait_for_catchup($new, 'replay');

	my @cmd = ('pgbench', '-n', @{ $o{args} }, '-c', $clients, '-j', '4', '-T', '20', '-P', '1',
		$pw->connstr);
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(\@cmd, '>', \$out, '2>', \$err);
	my $start = time();
	sleep 8;
	my $kill_at = time() - $start;
	$old->stop('immediate');
	sleep 2;
	my $promote_at = time() - $start;
	$new->promote;
	$h->finish;
	note "pgbench stdout:\n$out";
	note "pgbench stderr (tail):\n" . join("\n", (split /\n/, $err)[-20 .. -1]) if $err;

	my ($processed) = $out =~ /number of transactions actually processed: (\d+)/;
	my ($failed)    = $out =~ /number of failed transactions: (\d+)/;
	my $aborted = () = $err =~ /client \d+ aborted/g;
	my @progress;
	while ($err =~ /progress: ([\d.]+) s, ([\d.]+) tps/g)
	{
		push @progress, [ $1, $2 ];
	}
	ok(defined $processed && $processed > 0, "$tag: pgbench processed transactions");
	my ($back) = grep { $_->[0] > $kill_at + 1 && $_->[1] > 0 } @progress;
	my $recovery = defined $back ? $back->[0] - $promote_at : undef;
	note sprintf("%s: kill at %.1f s, promote at %.1f s, first progress with throughput at %s s",
		$tag, $kill_at, $promote_at, defined $back ? $back->[0] : 'never');
	$pw->stop;
	$old->teardown_node(fail_ok => 1);
	return ($pw, $new, $processed, $failed, $aborted, $recovery);
}

{
	my ($pw, $new, $processed, $failed, $aborted, $recovery) =
	  failover_run(tag => 'reads', args => [ '-S' ]);
	is($failed,  0, 'reads: no failed transaction across the failover');
	is($aborted, 0, 'reads: no client aborted');
	# Progress lines come every second: "within 1 s" is the line for the
	# second after the one the promotion happened in.
	ok(defined $recovery && $recovery <= time_bound(2),
		'reads: throughput back within a progress interval of the promotion ('
		  . ($recovery // 'never') . ' s)');
	ok($pw->log_contains(qr/retrying its read-only query|while idle; it will get a new server/),
		'reads: sessions on the dead primary were moved, not failed');
	ok($pw->log_contains(qr/hold ended after \d+ ms/), 'reads: the hold is logged with its duration');
	$new->stop;
}

{
	my ($pw, $new, $processed, $failed, $aborted, $recovery) =
	  failover_run(tag => 'writes', args => [ '-N' ]);
	ok($aborted <= $clients,
		"writes: errors only for transactions in flight at the kill ($aborted clients)");
	my $rows = $new->safe_psql('postgres', 'SELECT count(*) FROM pgbench_history');
	ok($rows >= $processed,
		"writes: all $processed transactions pgbench counted are on the new primary ($rows rows)");
	$new->stop;
}

done_testing();
