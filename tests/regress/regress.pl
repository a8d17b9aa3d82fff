# PostgreSQL 15's own regression suite, directly and through pgwing, each
# test's output compared between the runs (tests/regress/README.md).
#
# Run by tests/regress/run (make check-regress), which fetches the suite, builds
# regress.so and hands over through tests/run-tap with:
#   PGWING_REGRESS_SUITE     src/test/regress of the Debian source package
#   PGWING_REGRESS_DLPATH    regress.so, refint.so, autoinc.so (pg_regress --dlpath)
#   PGWING_REGRESS_MODES     pgwing runs, of: default forced (default: both)
#   PGWING_REGRESS_SCHEDULE  parallel (default) or serial (parallel_schedule, one
#                            test at a time, as upstream `make installcheck`)
#   PGWING_REGRESS_VERSION   the suite's version, for the report
#
# One cluster; before each run the database "regression" is made afresh by
# pg_regress itself, straight on the cluster (its usual settings: template0,
# lc_messages C, bytea_output hex, ...), then pg_regress --use-existing runs the
# schedule against the cluster's port (direct) or pgwing's rw port. Each test's
# results/NAME.out is compared with the direct run's, not with upstream's
# expected output: the direct run may differ from that (a point release between
# the suite and the server, locale, timing), which says nothing about pgwing.
#
# Modes: default, pgwing's default settings (every difference fails the test);
# forced, default_pool_size = 2, the smallest server_idle_timeout (1ms) and
# server_release = always, so sessions hand their servers over at every idle
# point:
# differences are reported (TODO tests), not failed.
#
# Everything stays in tmp_check/regress/: MODE/results/*.out, MODE/log,
# diffs/MODE/NAME.diff, timings and summary (the last line the wrapper prints).
use strict;
use warnings;
use File::Path qw(make_path remove_tree);
use File::Copy qw(copy);
use IPC::Run;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(new_node);
use Test::More;
use Time::HiRes qw(time);

my $suite    = $ENV{PGWING_REGRESS_SUITE}  or die "PGWING_REGRESS_SUITE is not set: run tests/regress/run\n";
my $dlpath   = $ENV{PGWING_REGRESS_DLPATH} or die "PGWING_REGRESS_DLPATH is not set\n";
my @modes    = split ' ', ($ENV{PGWING_REGRESS_MODES} // 'default forced');
my $schedule = $ENV{PGWING_REGRESS_SCHEDULE} // 'parallel';
my $version  = $ENV{PGWING_REGRESS_VERSION} // '?';
my $pg_regress = $ENV{PG_REGRESS} or die "PG_REGRESS is not set\n";
my $bindir   = $ENV{PG_BINDIR} // '/usr/lib/postgresql/15/bin';
die "unknown schedule $schedule (parallel or serial)\n" unless $schedule =~ /^(parallel|serial)$/;
for my $m (@modes)
{
	die "unknown mode $m (default or forced)\n" unless $m =~ /^(default|forced)$/;
}

my $top = "$PostgreSQL::Test::Utils::tmp_check/regress";
remove_tree($top);
make_path("$top/diffs");

# The tests in schedule order (several to a line in a parallel group).
my @tests;
open my $sf, '<', "$suite/parallel_schedule" or die "$suite/parallel_schedule: $!";
while (<$sf>)
{
	push @tests, split ' ', $1 if /^test:\s*(.*)$/;
}
close $sf;
die "no tests in $suite/parallel_schedule\n" unless @tests;

# As pg_regress's own temp instance (max_prepared_transactions = 2, so
# prepared_xacts runs rather than expecting its "disabled" output), minus its
# per-statement logging: the suite runs three times. 20 concurrent tests, some
# with a second connection, plus pgwing's pool and probes.
my $node = new_node(
	'regress',
	max_connections => 60,
	conf            => join("\n",
		'max_prepared_transactions = 2',
		'log_statement = none',
		'log_min_messages = warning',
		'log_min_error_statement = panic',
		''));

my %seconds;
my %failed;    # mode => pg_regress's own exit code (1: some tests failed vs expected)

# Run pg_regress to completion; its output goes to $log. Returns its exit code.
sub run_pg_regress
{
	my ($log, @args) = @_;
	my @cmd = ($pg_regress, "--bindir=$bindir", @args);
	note "running: @cmd";
	my $ok = IPC::Run::run(\@cmd, '<', \undef, '>', $log, '2>&1');
	return $? >> 8;
}

# Prepared transactions a run left behind (the suite leaves none when run
# directly): reported, then rolled back, as they would keep the next run from
# dropping the database and hold their locks and GIDs.
my %leftover;

sub roll_back_prepared
{
	my ($after) = @_;
	my $rows = $node->safe_psql('postgres',
		"SELECT database || '|' || gid FROM pg_prepared_xacts ORDER BY gid");
	for my $row (split /\n/, $rows)
	{
		my ($db, $gid) = split /\|/, $row, 2;
		push @{ $leftover{$after} }, $gid;
		$gid =~ s/'/''/g;
		$node->safe_psql($db, "ROLLBACK PREPARED '$gid'");
	}
	return;
}

# A fresh "regression" database, made by pg_regress on the cluster itself.
sub fresh_database
{
	my ($dir) = @_;
	make_path($dir);
	$node->safe_psql('postgres', 'DROP DATABASE IF EXISTS regression WITH (FORCE)');
	my $rc = run_pg_regress("$dir/setup.log", '--host=127.0.0.1', '--port=' . $node->port,
		"--inputdir=$suite", "--outputdir=$dir", '--dbname=regression');
	die "pg_regress could not create the database (exit $rc):\n" . slurp_file("$dir/setup.log")
	  if $rc != 0;
	return;
}

# One run of the whole schedule against host:port; results in $top/$name.
sub run_suite
{
	my ($name, $port) = @_;
	my $dir = "$top/$name";
	fresh_database($dir);
	my @args = (
		'--use-existing', '--host=127.0.0.1', "--port=$port", "--inputdir=$suite",
		"--outputdir=$dir", "--dlpath=$dlpath", '--max-concurrent-tests=20',
		"--schedule=$suite/parallel_schedule");
	push @args, '--max-connections=1' if $schedule eq 'serial';
	my $t0 = time();
	my $rc = run_pg_regress("$dir/pg_regress.log", @args);
	$seconds{$name} = time() - $t0;
	$failed{$name} = $rc;
	roll_back_prepared($name);
	diag(sprintf("regress: %s run took %.0f s (pg_regress exit %d%s)",
		$name, $seconds{$name}, $rc, $rc == 1 ? ': some tests differ from upstream expected' : ''));
	die "pg_regress could not run the suite ($name, exit $rc):\n"
	  . slurp_file("$dir/pg_regress.log")
	  if $rc > 1;
	return;
}

# pgwing in front of the cluster, as the TAP tests write its config.
sub start_pgwing
{
	my ($mode) = @_;
	# Default mode: pgwing's defaults, beyond what PgWing::Test writes
	# (addresses, ports, trust, the auth file).
	my %settings;
	if ($mode eq 'forced')
	{
		# Two servers for 20 sessions at once: whenever another session
		# waits, a session gives its server back at its next idle point
		# (pool_should_release); and any session idle at a sweep (every
		# 100 ms, the sweep's shortest period) gives it back as well.
		$settings{default_pool_size}   = 2;
		$settings{server_idle_timeout} = '1ms';
		# And at every idle point, whether anyone waits or not.
		$settings{server_release} = 'always';
	}
	my $pw = PgWing::Test->new(
		name      => $mode,
		backends  => [ [ primary => $node ] ],
		auth_type => 'trust',
		settings  => \%settings,
		verbose   => $mode eq 'forced' ? 1 : 0);
	$pw->start;
	return $pw;
}

# The moves of a forced run, from its debug log: for each client, the backend
# pids it was served by in turn; a move is a change of pid. Idle points are the
# releases plus what SHOW STATS counts as transactions.
sub count_moves
{
	my ($pw, $stats) = @_;
	my (%server_pid, %server_client, %client_pid, %client_moves);
	my ($moves, $releases, $replays, $served, $swept, $reclaimed, $made_room) = (0) x 7;
	open my $fh, '<', $pw->logfile or return;
	while (<$fh>)
	{
		if (/server (\d+): connecting to .* for client (\d+)/)
		{
			$server_client{$1} = $2;
		}
		elsif (/server (\d+): logged in to .*backend pid (\d+)/)
		{
			my $cl = $server_client{$1};
			$served++;
			if (defined $cl)
			{
				$moves++ if defined $client_pid{$cl} && $client_pid{$cl} != $2;
				$client_pid{$cl} = $2;
			}
		}
		elsif (/server (\d+): reused for client (\d+) \(backend pid (\d+)\)/)
		{
			$served++;
			$moves++ if defined $client_pid{$2} && $client_pid{$2} != $3;
			$client_pid{$2} = $3;
		}
		elsif (/client \d+: releasing server \d+ at an idle point/) { $releases++; }
		elsif (/client \d+: releasing its server, idle for/)          { $swept++; }
		elsif (/client \d+: giving its server back, the pool is full/) { $reclaimed++; }
		elsif (/server \d+: restoring session state of client/)    { $replays++; }
		elsif (/server \d+: closing a pooled server to make room/) { $made_room++; }
	}
	close $fh;
	return { moves => $moves, releases => $releases, replays => $replays, served => $served,
		clients => scalar(keys %client_pid), swept => $swept, reclaimed => $reclaimed,
		made_room => $made_room };
}

# Run the suite directly, then through pgwing in each mode.
run_suite('direct', $node->port);
my %moves;
my %stats;
for my $mode (@modes)
{
	my $pw = start_pgwing($mode);
	run_suite($mode, $pw->rw_port);
	my $rows = eval { $pw->admin_rows('SHOW STATS') } // [];
	for my $r (@$rows)
	{
		next unless ($r->{database} // '') eq 'regression';
		for my $k (keys %$r)
		{
			$stats{$mode}{$k} += $r->{$k} if ($r->{$k} // '') =~ /^\d+$/;
		}
	}
	$pw->stop;
	$moves{$mode} = count_moves($pw) if $mode eq 'forced';
}

# Compare each test's output with the direct run's.
my %differ;
my @report;
for my $mode (@modes)
{
	my $tag = $mode eq 'forced' ? 'forced-move' : 'default';
	make_path("$top/diffs/$mode");
	for my $t (@tests)
	{
		my $want = "$top/direct/results/$t.out";
		my $got  = "$top/$mode/results/$t.out";
		my $what;
		if (!-f $want)
		{
			$what = 'no output from the direct run';
		}
		elsif (!-f $got)
		{
			$what = "no output through pgwing";
		}
		else
		{
			my ($out, $err) = ('', '');
			IPC::Run::run([ 'diff', '-U3', $want, $got ], '>', \$out, '2>', \$err);
			if ($out ne '')
			{
				for my $f ("$top/diffs/$mode/$t.diff", "$top/diffs/$mode.diffs")
				{
					open my $d, '>>', $f or die "$f: $!";
					print $d $out;
					close $d;
				}
				my $lines = grep { /^[-+](?![-+]{2} )/ } split /\n/, $out;
				$what = "$lines lines differ, diffs/$mode/$t.diff";
			}
		}
		if ($mode eq 'forced')
		{
		  TODO:
			{
				local $TODO = 'forced-move mode: differences are reported, not failed';
				ok(!defined $what, "$tag: $t") or diag("$tag: $t: $what");
			}
		}
		else
		{
			ok(!defined $what, "$tag: $t") or diag("$tag: $t: $what");
		}
		if (defined $what)
		{
			$differ{$mode}++;
			push @report, "$tag: $t: $what";
		}
	}
}

# The report: timings, moves, differences, and the line the wrapper prints last.
my $n = scalar @tests;
my @lines = ("suite: PostgreSQL $version src/test/regress, $schedule schedule, $n tests");
push @lines, sprintf("time: %s run %.0f s", $_, $seconds{$_}) for ('direct', @modes);
push @lines, sprintf("pg_regress vs upstream expected: %s exit %d", $_, $failed{$_})
  for ('direct', @modes);
for my $mode (@modes)
{
	my $s = $stats{$mode} // {};
	push @lines, sprintf("%s: SHOW STATS for regression: %s", $mode,
		join(', ', map { "$_ $s->{$_}" } grep { /count/ } sort keys %$s));
}
if (my $m = $moves{forced})
{
	my $xacts = $stats{forced}{total_xact_count} // 0;
	push @lines,
	  sprintf("forced: %d sessions got a server %d times; %d releases at idle points, "
		  . "%d moves to another backend, %d replays; %d transactions (%s moved)",
		$m->{clients}, $m->{served}, $m->{releases}, $m->{moves}, $m->{replays}, $xacts,
		$xacts ? sprintf('%.0f%% of idle points', 100 * $m->{moves} / $xacts) : 'n/a');
	push @lines,
	  sprintf("forced: releases by cause: %d at ReadyForQuery while others waited, %d by "
		  . "the idle sweep (server_idle_timeout), %d by a waiter reclaiming an idle "
		  . "session's server; %d moves closed a pooled server to open a new one",
		$m->{releases} - $m->{swept} - $m->{reclaimed}, $m->{swept}, $m->{reclaimed},
		$m->{made_room});
}
for my $name ('direct', @modes)
{
	push @lines, "$name: left prepared transactions behind (rolled back): @{ $leftover{$name} }"
	  if $leftover{$name};
}
push @lines, @report;
my $summary = sprintf("regress: %d tests, %s differ (default), %s differ (forced-move)",
	$n,
	(grep { $_ eq 'default' } @modes) ? ($differ{default} // 0) : 'not run:',
	(grep { $_ eq 'forced' } @modes)  ? ($differ{forced} // 0)  : 'not run:');
$summary =~ s/not run: differ \((default|forced-move)\)/$1 not run/g;
push @lines, $summary;
diag($_) for @lines;
open my $sum, '>', "$top/summary" or die "$top/summary: $!";
print $sum "$_\n" for @lines;
close $sum;

done_testing();
