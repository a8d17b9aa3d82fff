# Scale to zero with wake=exec: a stopped backend is started by pgwing's wake
# command when clients need it.
#
# - 20 concurrent clients of an asleep backend share one wake (the command
#   runs once) and all get their rows.
# - A stopped backend is woken by a query, five times over; the wake overhead
#   (first query to its row, minus the wake command alone, median of 5) is
#   printed as a figure, not asserted: timing belongs to the benchmark.
# - A wake command that starts nothing: clients get 08006 at wake_timeout,
#   not before, and the admin console answers throughout.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;
use IPC::Run;
use Time::HiRes qw(time usleep);

my $node = new_node('pg1');
my $datadir = $node->data_dir;
my $pglog   = $node->logfile;
my $wakes   = "$PostgreSQL::Test::Utils::tmp_check/070_wakes.txt";
unlink $wakes;    # tmp_check outlives a run: count this run's wakes only
my $script  = "$PostgreSQL::Test::Utils::tmp_check/070_wake.sh";

# The wake command: count the wake, then start the server and wait until it accepts.
open my $fh, '>', $script or die "write $script: $!";
print $fh "#!/bin/sh\necho woke >> '$wakes'\nexec pg_ctl -D '$datadir' -l '$pglog' -w start\n";
close $fh;
chmod 0755, $script;

sub stop_backend
{
	system('pg_ctl', '-D', $datadir, '-m', 'fast', '-w', 'stop') == 0
	  or die "pg_ctl stop failed";
	return;
}

sub count_wakes
{
	open my $in, '<', $wakes or return 0;
	my @lines = <$in>;
	return scalar @lines;
}

$node->stop;
my $pw = PgWing::Test->new(
	backends => [ [ pg1 => $node, wake => "exec:\"$script\"" ] ],
	settings => {
		health_interval   => '200ms',
		health_fail_count => 1,
		wake_timeout      => '30s',
	});
$pw->start;
ok($pw->wait_for_log(qr/backend pg1: unknown -> asleep/), 'a stopped backend with wake= is asleep');
like($pw->safe_psql('SHOW BACKENDS', dbname => 'pgwing', user => 'admin'),
	qr/^pg1\|.*\|asleep\|/m, 'SHOW BACKENDS says asleep');

# 20 clients at once: one wake, 20 answers.
my @runs;
for my $i (1 .. 20)
{
	my ($out, $err) = ('', '');
	my @cmd = ('psql', '-XAtq', '-d', $pw->connstr, '-c', "SELECT $i * 2");
	push @runs, [ IPC::Run::start(\@cmd, '>', \$out, '2>', \$err), \$out, \$err, $i ];
}
my $answered = 0;
for my $r (@runs)
{
	$r->[0]->finish;
	my ($out, $err, $i) = (${ $r->[1] }, ${ $r->[2] }, $r->[3]);
	chomp $out;
	if ($out eq $i * 2) { $answered++; }
	else { diag("client $i: out '$out', err '$err'"); }
}
is($answered, 20, 'all 20 clients got their rows');
is(count_wakes(), 1, 'the wake command ran once for 20 clients');
ok($pw->log_contains(qr/backend pg1: woke up in \d+ ms/), 'the wake is logged with its duration');
like($pw->safe_psql('SHOW BACKENDS', dbname => 'pgwing', user => 'admin'),
	qr/^pg1\|.*\|up\|.*\|\d+\|[a-z,]*$/m,
	'SHOW BACKENDS: up, with the last wake time and duration');

sub backend_state
{
	my ($p, $name) = @_;
	my $rows = $p->safe_psql('SHOW BACKENDS', dbname => 'pgwing', user => 'admin');
	return $rows =~ /^\Q$name\E\|(?:[^|]*\|){4}([^|]*)\|/m ? $1 : '';
}

sub wait_for_state
{
	my ($p, $name, $state) = @_;
	my $deadline = time() + time_bound(10);
	usleep(50_000) while backend_state($p, $name) ne $state && time() < $deadline;
	return backend_state($p, $name) eq $state;
}

# The overhead over a bare pg_ctl start, median of 5. Each round times the
# wake command alone, then a client's query that makes pgwing run it.
sub median { my @s = sort { $a <=> $b } @_; return $s[ int(@s / 2) ]; }
my (@through, @bare);
for my $round (1 .. 5)
{
	stop_backend();
	my $t0 = time();
	system($script) == 0 or die "wake script failed";
	push @bare, time() - $t0;
	stop_backend();
	ok(wait_for_state($pw, 'pg1', 'asleep'), "round $round: asleep");
	$t0 = time();
	is($pw->safe_psql('SELECT 1'), '1', "round $round: woken by a query");
	push @through, time() - $t0;
}
my $overhead = median(@through) - median(@bare);
diag(sprintf("wake overhead: %.0f ms (median through pgwing %.0f ms, pg_ctl start alone %.0f ms)",
		$overhead * 1000, median(@through) * 1000, median(@bare) * 1000));

# A wake that starts nothing: the error comes at wake_timeout, not before.
my $dead = new_node('dead');
$dead->stop;
my $pw2 = PgWing::Test->new(
	name     => 'dud',
	backends => [ [ dead => $dead, wake => 'exec:"true"' ] ],
	settings => {
		health_interval   => '200ms',
		health_fail_count => 1,
		wake_timeout      => '3s',
	});
$pw2->start;
ok($pw2->wait_for_log(qr/backend dead: unknown -> asleep/), 'dud: asleep');
my ($out, $err) = ('', '');
my $t0 = time();
my $h = IPC::Run::start([ 'psql', '-XAtq', '-d', $pw2->connstr, '-c', 'SELECT 1' ],
	'>', \$out, '2>', \$err);
usleep(500_000);
my $c0 = time();
like($pw2->safe_psql('SHOW BACKENDS', dbname => 'pgwing', user => 'admin'),
	qr/^dead\|.*\|waking\|/m, 'dud: waking while the client waits');
# Blocked by the wake, it would answer only at wake_timeout (2.5 s from here).
cmp_ok(time() - $c0, '<', time_bound(2), 'dud: the console answers at once during the wake');
$h->finish;
my $elapsed = time() - $t0;
like($err, qr/backend dead did not wake within 3 s/, 'dud: the client is told the backend did not wake');
cmp_ok($elapsed, '>=', 3, 'dud: not before wake_timeout');
cmp_ok($elapsed, '<', time_bound(6), 'dud: at wake_timeout');
ok($pw2->log_contains(qr/backend dead: did not wake within 3000 ms: asleep again/),
	'dud: asleep again');
like($pw2->safe_psql('SHOW BACKENDS', dbname => 'pgwing', user => 'admin'),
	qr/^dead\|.*\|asleep\|/m, 'dud: SHOW BACKENDS says asleep again');
ok(!$pw2->log_contains(qr/did not wake.*\n.*did not wake/), 'dud: one wake attempt');

$pw2->stop;
$pw->stop;
stop_backend();
done_testing();
