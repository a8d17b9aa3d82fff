# Promotion: the primary stops and its replica is promoted (pg_ctl promote).
# Within health_interval + health_timeout + 1 s, new rw clients write to the
# new primary. The old primary, restarted standalone on the older timeline, is
# fenced and never written to.
#
# PGWING_PROMOTE_RUNS=5 repeats the promotion on fresh clusters and reports
# the median time from pg_ctl promote to the first write through pgwing.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;
use Time::HiRes qw(usleep time);

my $interval_ms = 200;
my $timeout_ms  = 1000;
my $budget      = time_bound(($interval_ms + $timeout_ms) / 1000 + 1);
my $runs        = $ENV{PGWING_PROMOTE_RUNS} // 1;

sub promote_once
{
	my ($run) = @_;
	my ($old, $new) =
	  primary_with_replicas("old$run", ["new$run"], sql => 'CREATE TABLE t (v int)');

	my $pw = start_pgwing_with(
		name     => "pw$run",
		backends => [ [ old => $old ], [ new => $new ] ],
		settings => {
			health_interval => "${interval_ms}ms",
			health_timeout  => "${timeout_ms}ms",
			hold_timeout    => '10s',
		},
		up    => [ old => 'primary', new => 'replica' ],
		label => "run $run: ");
	is( $pw->safe_psql('INSERT INTO t VALUES (1) RETURNING inet_server_port()'),
		$old->port, "run $run: writes go to the primary");

	my $offset = $pw->log_position;
	$old->stop('fast');
	my $promote_start = time();
	$new->promote;

	# New clients, one after another, until a write succeeds.
	my ($port, $elapsed);
	while (time() - $promote_start < $budget + 10)
	{
		my ($rc, $out) = $pw->psql('INSERT INTO t VALUES (2) RETURNING inet_server_port()',
			timeout => 5);
		if ($rc == 0)
		{
			($port, $elapsed) = ($out, time() - $promote_start);
			last;
		}
		usleep(20_000);
	}
	is($port, $new->port, "run $run: the first write after promotion lands on the new primary");
	ok(defined $elapsed && $elapsed <= $budget,
		sprintf("run $run: within %.1f s of pg_ctl promote (took %s s)",
			$budget, defined $elapsed ? sprintf('%.3f', $elapsed) : 'forever'));
	ok($pw->log_contains(qr/backend new: replica -> primary/, $offset),
		"run $run: the role change is logged");

	# The old primary was fenced as soon as a newer timeline appeared, while it
	# was still down: when it comes back standalone on timeline 1, no write
	# can slip in before the fence.
	ok($pw->log_contains(qr/backend old: FENCED/, $offset), "run $run: old primary fenced");
	$offset = $pw->log_position;
	$old->start;
	ok($pw->wait_for_log(qr/backend old: down -> up \(primary, timeline 1\)/, $offset),
		"run $run: old primary back up, standalone on timeline 1");
	for my $i (1 .. 5)
	{
		is($pw->safe_psql('INSERT INTO t VALUES (3) RETURNING inet_server_port()'),
			$new->port, "run $run: write $i goes to the new primary, not the fenced one");
	}
	is($old->safe_psql('postgres', 'SELECT count(*) FROM t WHERE v > 1'),
		'0', "run $run: nothing was written to the old primary");

	$pw->stop;
	$old->stop;
	$new->stop;
	return $elapsed;
}

my @times = sort { $a <=> $b } grep { defined } map { promote_once($_) } 1 .. $runs;
diag(sprintf('pg_ctl promote to first write through pgwing: median %.3f s of %d (%s)',
		$times[ $#times / 2 ], scalar(@times), join(', ', map { sprintf('%.3f', $_) } @times)))
  if @times;

done_testing();
