# PostgreSQL 15's own regression suite, directly and through pgwing, each
# test's output compared between the runs (tests/regress/README.md).
#
# Run by tests/regress/run (make check-regress), which fetches the suite, builds
# regress.so and hands over through tests/run-tap with:
#   PGWING_REGRESS_SUITE     src/test/regress of the Debian source package
#   PGWING_REGRESS_DLPATH    regress.so, refint.so, autoinc.so (pg_regress --dlpath)
#   PGWING_REGRESS_MODES     pgwing runs, of: default forced split (default: all)
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
# Modes: default, pgwing's default settings; forced, default_pool_size = 2, the
# smallest server_idle_timeout (1ms) and server_release = always, so sessions
# hand their servers over at every idle point; split, the default settings plus
# rw_split = on, with a streaming replica beside the primary (skipped when this
# pgwing has no rw_split). A difference fails its test unless
# tests/regress/expected-differences lists it for that mode and test: every line
# the difference removes or adds must match one of the entry's patterns.
#
# Everything stays in tmp_check/regress/: MODE/results/*.out, MODE/log,
# diffs/MODE/NAME.diff, timings and summary (the last line the wrapper prints).
use strict;
use warnings;
use File::Path qw(make_path remove_tree);
use File::Copy qw(copy);
use IPC::Run;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(new_node run_pgwing);
use Test::More;
use Time::HiRes qw(time);
use FindBin;

my $suite    = $ENV{PGWING_REGRESS_SUITE}  or die "PGWING_REGRESS_SUITE is not set: run tests/regress/run\n";
my $dlpath   = $ENV{PGWING_REGRESS_DLPATH} or die "PGWING_REGRESS_DLPATH is not set\n";
my @modes    = split ' ', ($ENV{PGWING_REGRESS_MODES} // 'default forced split');
my $schedule = $ENV{PGWING_REGRESS_SCHEDULE} // 'parallel';
my $version  = $ENV{PGWING_REGRESS_VERSION} // '?';
my $pg_regress = $ENV{PG_REGRESS} or die "PG_REGRESS is not set\n";
my $bindir   = $ENV{PG_BINDIR} // '/usr/lib/postgresql/15/bin';
die "unknown schedule $schedule (parallel or serial)\n" unless $schedule =~ /^(parallel|serial)$/;
for my $m (@modes)
{
	die "unknown mode $m (default, forced or split)\n" unless $m =~ /^(default|forced|split)$/;
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
# per-statement logging: the suite runs up to four times. 20 concurrent tests,
# some with a second connection, plus pgwing's pool and probes. It can stream
# to a replica (the split mode) in every run, so that the direct run is made
# on the same settings; shared_buffers and max_wal_size as initdb's defaults,
# not the streaming test node's 1MB and 128MB.
my $node = new_node(
	'regress',
	allows_streaming => 1,
	max_connections  => 60,
	conf             => join("\n",
		'max_prepared_transactions = 2',
		'shared_buffers = 128MB',
		'max_wal_size = 1GB',
		'log_statement = none',
		'log_min_messages = warning',
		'log_min_error_statement = panic',
		''));

my $replica;    # the split mode's streaming replica, once started
# pg_regress gives each test's psql its own application_name
# (pg_regress/TEST), and a pooled server serves only a client whose startup
# parameters are the same: in the forced mode every move opened a new backend
# (the run took 12-17 min, each test waiting on backend starts). The forced
# run's psql is named pg_regress instead, so moves hand pooled servers between
# the tests; no test's output shows its application_name. The other runs keep
# pg_regress's names, as a user's apps would differ.
my $psql_dir = "$PostgreSQL::Test::Utils::tmp_check/regress_bin";
make_path($psql_dir);
open my $wrapper, '>', "$psql_dir/psql" or die "$psql_dir/psql: $!";
print $wrapper "#!/bin/sh\nPGAPPNAME=pg_regress exec '$bindir/psql' \"\$@\"\n";
close $wrapper;
chmod 0755, "$psql_dir/psql";

my %seconds;
my %failed;    # mode => pg_regress's own exit code (1: some tests failed vs expected)

# Run pg_regress to completion; its output goes to $log. Returns its exit code.
sub run_pg_regress
{
	my ($log, $psql_bindir, @args) = @_;
	my @cmd = ($pg_regress, "--bindir=$psql_bindir", @args);
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
	my $rc = run_pg_regress("$dir/setup.log", $bindir, '--host=127.0.0.1', '--port=' . $node->port,
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
	# The replica must have the new database before pgwing sends it a read.
	$node->wait_for_catchup($replica, 'replay') if $replica;
	my @args = (
		'--use-existing', '--host=127.0.0.1', "--port=$port", "--inputdir=$suite",
		"--outputdir=$dir", "--dlpath=$dlpath", '--max-concurrent-tests=20',
		"--schedule=$suite/parallel_schedule");
	push @args, '--max-connections=1' if $schedule eq 'serial';
	my $t0 = time();
	my $rc = run_pg_regress("$dir/pg_regress.log", $name eq 'forced' ? $psql_dir : $bindir,
		@args);
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
	my @backends = ([ primary => $node ]);
	if ($mode eq 'split')
	{
		$settings{rw_split} = 'on';
		push @backends, [ replica => $replica ];
	}
	elsif ($mode eq 'forced')
	{
		# Two servers for 20 sessions at once: whenever another session
		# waits, a session gives its server back at its next idle point
		# (pool_should_release); and any session idle at a sweep (every
		# 100 ms, the sweep's shortest period) gives it back as well.
		$settings{default_pool_size}   = 2;
		$settings{server_idle_timeout} = '1ms';
		# And at every idle point, whether anyone waits or not.
		$settings{server_release} = 'always';
		# A session with state that cannot move (a temp table) keeps its
		# server to its end: two such tests hold both servers and the other
		# 18 wait, past the default 30 s on a loaded machine (FATAL "no
		# server free", the test's output cut short). Waiting is not what
		# this mode tests.
		$settings{hold_timeout} = '15min';
	}
	my $pw = PgWing::Test->new(
		name      => $mode,
		backends  => \@backends,
		auth_type => 'trust',
		settings  => \%settings,
		verbose   => $mode eq 'forced' ? 1 : 0);
	$pw->start;
	# Reads go to the replica only once pgwing has seen it up.
	$pw->wait_for_backend('replica', state => 'up', role => 'replica', timeout => 30)
	  or die "pgwing does not see the replica up:\n" . $pw->log_tail(30)
	  if $mode eq 'split';
	return $pw;
}

# Why this pgwing cannot run the split mode (undef when it can): a build
# without rw_split (main before the split routing landed) would refuse the
# setting at start.
sub split_unsupported
{
	my $pw = PgWing::Test->new(name => 'print_config', backends => [ [ primary => $node ] ]);
	$pw->write_config;
	my ($rc, $out, $err) = run_pgwing('--print-config', $pw->config_file);
	return "pgwing --print-config failed (exit $rc): $err" if $rc != 0;
	return 'this pgwing has no rw_split setting (pgwing --print-config does not list it)'
	  unless $out =~ /^\s*rw_split\s*=/m;
	return;
}

# A streaming replica of $node for the split mode, made from a base backup
# just before that run, so that it replays none of the earlier runs.
sub start_replica
{
	$node->safe_psql('postgres', 'DROP DATABASE IF EXISTS regression WITH (FORCE)');
	$node->backup('split_base');
	my $r = PostgreSQL::Test::Cluster->new('regress_replica');
	$r->init_from_backup($node, 'split_base', has_streaming => 1);
	$r->start;
	return $r;
}

# Transactions the replica ran in the database regression (its own
# statistics): how much of the split run it served.
sub replica_xacts
{
	return $replica->safe_psql('postgres',
		"SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = 'regression'");
}

# The moves of a forced run, from its debug log: the backend pid of each
# server, and for each client the server it gives back at each idle point; a
# move is a release on another backend than the client's previous one.
sub count_moves
{
	my ($pw) = @_;
	my (%server_pid, %client_pid);
	my ($moves, $releases, $replays, $served, $swept, $reclaimed, $made_room) = (0) x 7;
	open my $fh, '<', $pw->logfile or return;
	while (<$fh>)
	{
		if (/server (\d+): (?:logged in to .*, backend pid|reused \(backend pid) (\d+)/)
		{
			$server_pid{$1} = $2;
			$served++;
		}
		elsif (/client (\d+): releasing server (\d+) at an idle point/)
		{
			my $pid = $server_pid{$2} // next;
			$releases++;
			$moves++ if defined $client_pid{$1} && $client_pid{$1} != $pid;
			$client_pid{$1} = $pid;
		}
		elsif (/client \d+: releasing its server, idle for/)          { $swept++; }
		elsif (/client \d+: giving its server back/)                  { $reclaimed++; }
		elsif (/server \d+: restoring the session state of its client/) { $replays++; }
		elsif (/server \d+: closing a pooled server to make room/)   { $made_room++; }
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
my %skipped;    # mode => why it was not run
my $replica_served;
for my $mode (@modes)
{
	if ($mode eq 'split' && (my $why = split_unsupported()))
	{
		$skipped{split} = $why;
		diag("regress: split mode skipped: $why");
		next;
	}
	$replica = start_replica() if $mode eq 'split';
	my $pw = start_pgwing($mode);
	run_suite($mode, $pw->rw_port);
	$replica_served = replica_xacts() if $mode eq 'split';
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

# The expected differences (tests/regress/expected-differences): for each mode
# and test, its cause and the patterns the lines of its difference must match.
sub read_expected
{
	my ($file) = @_;
	my (%exp, $cur);
	open my $fh, '<', $file or die "$file: $!";
	while (my $line = <$fh>)
	{
		chomp $line;
		next if $line =~ /^\s*(#|$)/;
		if ($line =~ /^(default|forced|split)\s+(\S+)\s+\((documented|node-local|defect)\):\s*(.+)$/)
		{
			die "$file:$.: $1 $2 is listed twice\n" if $exp{$1}{$2};
			$cur = $exp{$1}{$2} = { class => $3, cause => $4, '-' => [], '+' => [] };
		}
		elsif ($line =~ /^\s+([-+]) (.*)$/ && $cur)
		{
			push @{ $cur->{$1} }, qr/^(?:$2)$/;
		}
		else
		{
			die "$file:$.: neither \"MODE TEST (CLASS): cause\" nor an indented \"- REGEX\" or \"+ REGEX\"\n";
		}
	}
	close $fh;
	return \%exp;
}
my $expected = read_expected("$FindBin::RealBin/expected-differences");

# The lines a unified diff removes and adds that no pattern of $entry covers.
sub unexpected_lines
{
	my ($diff, $entry) = @_;
	my @lines = split /\n/, $diff;
	splice @lines, 0, 2;    # the --- and +++ header
	my @bad;
	for my $l (@lines)
	{
		next unless $l =~ /^([-+])(.*)$/;
		my ($sign, $text) = ($1, $2);
		push @bad, $l unless $entry && grep { $text =~ $_ } @{ $entry->{$sign} };
	}
	return @bad;
}

# Compare each test's output with the direct run's.
my %differ;      # mode => tests with a difference not on the list
my %expected_seen;    # mode => tests with only listed differences
my @report;
for my $mode (grep { !$skipped{$_} } @modes)
{
	make_path("$top/diffs/$mode");
	for my $t (@tests)
	{
		my $want  = "$top/direct/results/$t.out";
		my $got   = "$top/$mode/results/$t.out";
		my $entry = $expected->{$mode}{$t};
		my ($what, $listed);
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
				my @bad = unexpected_lines($out, $entry);
				if (@bad)
				{
					my $more = @bad > 5 ? sprintf(' (and %d more)', @bad - 5) : '';
					$what = sprintf("%d lines differ%s, diffs/%s/%s.diff: %s%s",
						scalar(@bad), $entry ? ' beyond the expected ones' : '',
						$mode, $t, join(' | ', @bad[ 0 .. ($#bad < 4 ? $#bad : 4) ]), $more);
				}
				else
				{
					$listed = 1;
				}
			}
		}
		ok(!defined $what, "$mode: $t") or diag("$mode: $t: $what");
		if (defined $what)
		{
			$differ{$mode}++;
			push @report, "$mode: $t: $what";
		}
		elsif (!$listed && $entry)
		{
			push @report, "$mode: $t: listed as an expected difference ($entry->{class}) "
			  . 'but gave the same output this run';
		}
		elsif ($listed)
		{
			$expected_seen{$mode}{ $entry->{class} }++;
			push @report, "$mode: $t: expected difference, $entry->{class} "
			  . "(diffs/$mode/$t.diff): $entry->{cause}";
		}
	}
}

# The report: timings, moves, differences, and the line the wrapper prints last.
my $n = scalar @tests;
my @lines = ("suite: PostgreSQL $version src/test/regress, $schedule schedule, $n tests");
my @ran = ('direct', grep { !$skipped{$_} } @modes);
push @lines, sprintf("time: %s run %.0f s", $_, $seconds{$_}) for @ran;
push @lines, sprintf("time: %.0f s in all (cluster, runs, replica, comparison)", time() - $^T);
push @lines, sprintf("pg_regress vs upstream expected: %s exit %d", $_, $failed{$_}) for @ran;
for my $mode (grep { !$skipped{$_} } @modes)
{
	my $s = $stats{$mode} // {};
	push @lines, sprintf("%s: SHOW STATS for regression: %s", $mode,
		join(', ', map { "$_ $s->{$_}" } grep { /count|state_check/ } sort keys %$s));
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
	  sprintf("forced: releases: %d at idle points, %d by "
		  . "the idle sweep (server_idle_timeout), %d by a waiter reclaiming an idle "
		  . "session's server; %d pooled servers closed to open a new one",
		$m->{releases}, $m->{swept}, $m->{reclaimed}, $m->{made_room});
}
push @lines, "split: the replica ran $replica_served transactions in regression"
  if defined $replica_served;
for my $name (@ran)
{
	push @lines, "$name: left prepared transactions behind (rolled back): @{ $leftover{$name} }"
	  if $leftover{$name};
}
push @lines, "$_: not run: $skipped{$_}" for grep { $skipped{$_} } @modes;
push @lines, @report;
# regress: 217 tests; default 0 differ; forced 0 differ (as expected: 1 defect, 2 documented); ...
push @lines, "regress: $n tests; " . join(
	'; ',
	map {
		my $seen = $expected_seen{$_} // {};
		$skipped{$_} ? "$_ not run"
		  : sprintf('%s %d differ%s', $_, $differ{$_} // 0,
			%$seen ? ' (as expected: ' . join(', ', map { "$seen->{$_} $_" } sort keys %$seen) . ')'
			: '')
	} @modes);
diag($_) for @lines;
open my $sum, '>', "$top/summary" or die "$top/summary: $!";
print $sum "$_\n" for @lines;
close $sum;

done_testing();
