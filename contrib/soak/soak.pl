# Failover soak (contrib/soak/README.md): rounds of real faults under load,
# and what clients saw. Run by contrib/soak/run (through tests/run-tap, as a
# TAP file, not by make check).
#
# A primary and two streaming replicas (synchronous_standby_names 'ANY 1
# (*)'), pgwing in front. Each round starts the load, injects one fault,
# promotes the replica that received the most WAL (as an HA manager would),
# lets the load run on the new primary, stops the load, then rewinds the other
# two nodes (pg_rewind) into replicas of the new primary. Scenarios:
#   kill     pg_ctl -m immediate stop of the primary
#   hung     SIGSTOP of the primary's postmaster and children, promoted once
#            pgwing marks it down, continued 3 s later (it stays fenced)
#   restart  immediate stop, promotion, and the old primary started again at
#            once, as a primary
#   running  promotion while the old primary keeps running
# The load: a writer that records every acknowledged id (INSERT ... RETURNING
# the server's port), a reader on the ro port (max id: stale reads), idle
# sessions on both ports that speak once a second, and pgbench -S in simple,
# extended and prepared modes on both ports.
#
# Environment: SOAK_ROUNDS (per scenario, default 3), SOAK_SCENARIOS (default
# "kill hung restart running"), SOAK_IDLE (idle sessions, default 10),
# SOAK_PGBENCH_CLIENTS (per pgbench, default 2), SOAK_PGBENCH_RATE (tps per
# pgbench, default 100), SOAK_HEALTH_INTERVAL (default 250ms),
# SOAK_MAX_REPLICA_LAG (default 1s; a read older than that is stale).
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;
use IO::Select;
use POSIX ();
use Time::HiRes qw(usleep time);
use List::Util qw(first max sum0);

my $rounds    = $ENV{SOAK_ROUNDS} // 3;
my @scenarios = split ' ', ($ENV{SOAK_SCENARIOS} // 'kill hung restart running');
my $nidle     = $ENV{SOAK_IDLE} // 10;
my $pgb_c     = $ENV{SOAK_PGBENCH_CLIENTS} // 2;
my $pgb_rate  = $ENV{SOAK_PGBENCH_RATE} // 100;
my $interval  = $ENV{SOAK_HEALTH_INTERVAL} // '250ms';
my $max_lag   = $ENV{SOAK_MAX_REPLICA_LAG} // '1s';
# A duration setting ("250ms", "1s") in seconds.
sub seconds_of
{
	my ($d) = @_;
	$d =~ /^([\d.]+)(ms|s)$/ or die "soak: cannot read the duration $d";
	return $2 eq 'ms' ? $1 / 1000 : $1;
}
my $max_lag_s  = seconds_of($max_lag);
my $interval_s = seconds_of($interval);
my $dir = "$PostgreSQL::Test::Utils::tmp_check/soak";
mkdir $dir;

# pg_rewind needs the target's WAL back to the divergence: keep some.
my $sync = "synchronous_standby_names = 'ANY 1 (*)'\nwal_log_hints = on\nwal_keep_size = '512MB'\n";
my ($primary, @replicas) = primary_with_replicas('n1', [ 'n2', 'n3' ],
	sql => 'CREATE TABLE acks (id bigint PRIMARY KEY)');
$_->append_conf('postgresql.conf', $sync) for ($primary, @replicas);
# wal_log_hints (for pg_rewind) needs a restart.
$_->restart for ($primary, @replicas);
system_or_bail('pgbench', '-i', '-q', '-s', '1', '-h', $primary->host, '-p', $primary->port,
	'postgres');
$primary->wait_for_catchup($_, 'replay') for @replicas;
my %nodes = map { $_->name => $_ } ($primary, @replicas);

my $pw = start_pgwing_with(
	backends => [ map { [ $_->name => $_ ] } ($primary, @replicas) ],
	settings => {
		health_interval   => $interval,
		health_timeout    => '1s',
		health_fail_count => 2,
		hold_timeout      => '30s',
		max_replica_lag   => $max_lag,
		max_client_conn   => 1000,
		default_pool_size => 0,
	},
	up => [ n1 => 'primary', n2 => 'replica', n3 => 'replica' ]);

# --- load (child processes; they leave with POSIX::_exit so that no END
# block of theirs stops the nodes or pgwing) ---

my $stop_file = "$dir/stop";

sub child
{
	my ($code) = @_;
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	return $pid if $pid;
	eval { $code->() };
	print STDERR "soak child: $@" if $@;
	POSIX::_exit(0);
}

sub login
{
	my ($target) = @_;
	my $s = eval { $pw->raw_connect(target => $target) };
	return undef unless $s && raw_login($s, timeout => 60)->{ok};
	return $s;
}

# The columns of a DataRow (NULL as undef).
sub columns_of
{
	my ($b) = @_;
	my ($n, $at, @cols) = (unpack('n', $b), 2);
	for (1 .. $n)
	{
		my $len = unpack('l>', substr($b, $at, 4));
		push @cols, $len < 0 ? undef : substr($b, $at + 4, $len);
		$at += 4 + ($len < 0 ? 0 : $len);
	}
	return @cols;
}

# One request: (outcome, columns of the first row) where outcome is 'ok', an
# SQLSTATE, or 'eof'/'timeout'; notices are counted in $$notices.
sub request
{
	my ($s, $sql, $notices) = @_;
	my ($outcome, @row) = ('ok');
	my $has_row;
	print $s pg_message('Q', "$sql\0");
	while (1)
	{
		my ($t, $b) = read_message($s, 90);
		return ($b) unless defined $t;
		$$notices++ if $t eq 'N';
		$outcome = error_fields($b)->{C} // 'E' if $t eq 'E' && $outcome eq 'ok';
		@row = columns_of($b) if $t eq 'D' && !$has_row++;
		return ($outcome, @row) if $t eq 'Z';
	}
}

# A session that runs $sql in a loop and writes one line per request:
# kind, sent, done, outcome, value, notices, and the row's second column if
# any (the reader's: the port of the server that answered). Reconnects after
# an eof.
sub looper
{
	my ($kind, $target, $out, $pause_us, $sql) = @_;
	return child(sub {
		open my $fh, '>', $out or die "$out: $!";
		$fh->autoflush(1);
		my $s = login($target);
		my $n = 0;
		while (!-e $stop_file)
		{
			if (!$s)
			{
				usleep(100_000);
				$s = login($target);
				next;
			}
			my $notices = 0;
			my $q       = $sql->($n++);
			my $sent    = time;
			my ($outcome, $value, $port) = request($s, $q, \$notices);
			printf $fh "%s\t%.6f\t%.6f\t%s\t%s\t%d\t%s\n", $kind, $sent, time, $outcome,
			  $value // '', $notices, $port // '';
			if ($outcome eq 'eof' || $outcome eq 'timeout')
			{
				close $s;
				$s = undef;
			}
			usleep($pause_us);
		}
	});
}

# Idle sessions: each speaks once a second; anything that arrives while it is
# idle is written down too (kind "unsolicited").
sub idlers
{
	my ($out) = @_;
	return child(sub {
		open my $fh, '>', $out or die "$out: $!";
		$fh->autoflush(1);
		my @s = map { { target => ($_ % 2 ? 'ro' : 'rw'), sock => undef } } 1 .. $nidle;
		$_->{sock} = login($_->{target}) for @s;
		my $i = 0;
		while (!-e $stop_file)
		{
			my $e = $s[ $i++ % @s ];
			usleep(1_000_000 / @s);
			if (!$e->{sock})
			{
				$e->{sock} = login($e->{target});
				next;
			}
			my $sel = IO::Select->new($e->{sock});
			if ($sel->can_read(0))
			{
				my ($t, $b) = read_message($e->{sock}, 1);
				my $what =
				    !defined $t ? $b
				  : $t eq 'E'   ? (error_fields($b)->{C} // 'E')
				  :               "message $t";
				printf $fh "idle-%s\t%.6f\t%.6f\tunsolicited %s\t\t%d\n", $e->{target}, time,
				  time, $what, defined $t && $t eq 'N' ? 1 : 0;
				if (!defined $t || $t eq 'E')
				{
					close $e->{sock};
					$e->{sock} = undef;
				}
				next;
			}
			my $notices = 0;
			my $sent    = time;
			my ($outcome, $value) = request($e->{sock}, 'SELECT inet_server_port()', \$notices);
			printf $fh "idle-%s\t%.6f\t%.6f\t%s\t%s\t%d\n", $e->{target}, $sent, time, $outcome,
			  $value // '', $notices;
			if ($outcome eq 'eof' || $outcome eq 'timeout')
			{
				close $e->{sock};
				$e->{sock} = undef;
			}
		}
	});
}

sub pgbench
{
	my ($mode, $target, $out) = @_;
	return child(sub {
		open STDOUT, '>', "$out.out";
		open STDERR, '>', $out;
		exec 'pgbench', '-S', '-M', $mode, '-c', $pgb_c, '-R', $pgb_rate, '-T', 600, '-n', '-P', 1,
		  '-h', '127.0.0.1', '-p', $pw->port($target), '-U', os_user(), 'postgres';
	});
}

# --- the cluster ---

sub current_replicas { return grep { $_ != $primary } values %nodes; }

# The replica an HA manager would promote: the one that received the most WAL.
sub best_replica
{
	my ($best, $best_lsn);
	for my $r (sort { $a->name cmp $b->name } current_replicas())
	{
		my $lsn = $r->safe_psql('postgres',
			"SELECT pg_wal_lsn_diff(pg_last_wal_receive_lsn(), '0/0')");
		($best, $best_lsn) = ($r, $lsn) if !defined $best_lsn || $lsn > $best_lsn;
	}
	return $best;
}

my @stopped;
END { kill 'CONT', @stopped if @stopped; }

sub hang
{
	my ($node) = @_;
	@stopped = node_processes($node);
	kill 'STOP', @stopped;
}

sub unhang
{
	kill 'CONT', @stopped;
	@stopped = ();
}

# Rewind $node into a replica of $primary. pg_rewind copies the source's
# configuration files: the node keeps its own.
sub rejoin
{
	my ($node) = @_;
	# Cleanly: pg_rewind would otherwise finish recovery in single-user mode, which a standby
	# can't do.
	$node->stop('fast', fail_ok => 1) if defined $node->{_pid};
	my %conf = map { $_ => slurp_file($node->data_dir . "/$_") }
	  qw(postgresql.conf postgresql.auto.conf);
	command_ok(
		[
			'pg_rewind', '--target-pgdata', $node->data_dir,
			'--source-server', $primary->connstr('postgres')
		],
		$node->name . ': rewound from ' . $primary->name);
	for my $f (keys %conf)
	{
		open my $fh, '>', $node->data_dir . "/$f" or die $!;
		print $fh $conf{$f};
		close $fh;
	}
	$node->enable_streaming($primary);
	$node->start;
}

# --- one round ---

sub round
{
	my ($scenario, $n, $first_id) = @_;
	my $rdir = "$dir/$scenario-$n";
	mkdir $rdir;
	unlink $stop_file;
	my $old = $primary;
	my @pids = (
		looper(
			'write', 'rw', "$rdir/write", 5_000,
			sub { my $id = $first_id + $_[0]; "INSERT INTO acks VALUES ($id) RETURNING inet_server_port()" }),
		looper('read', 'ro', "$rdir/read", 20_000,
			sub { 'SELECT coalesce(max(id), 0), inet_server_port() FROM acks' }),
		idlers("$rdir/idle"));
	my %pgbench;
	for my $mode (qw(simple extended prepared))
	{
		$pgbench{"$mode-$_"} = pgbench($mode, $_, "$rdir/pgbench-$mode-$_") for qw(rw ro);
	}
	sleep 3;

	my %t = (fault => time);
	my $new;
	if ($scenario eq 'hung')
	{
		hang($old);
		$pw->wait_for_backend($old->name, state => 'down', timeout => 30)
		  or diag "$scenario $n: the hung primary was not marked down";
		$t{acted} = time;
	}
	elsif ($scenario ne 'running')
	{
		$old->stop('immediate');
		$t{acted} = time;
	}
	$new = best_replica();
	# New commits can't wait for a synchronous standby that is not there yet.
	$new->append_conf('postgresql.conf', "synchronous_standby_names = ''");
	$new->reload;
	$t{promote} = time;
	$new->promote;
	$t{promoted} = time;
	$primary = $new;
	$old->start if $scenario eq 'restart';
	$pw->wait_for_backend($new->name, state => 'up', role => 'primary', timeout => 30)
	  or diag "$scenario $n: pgwing did not see the promotion";
	$t{seen} = time;
	# Left running, the fault is the promotion itself.
	@t{qw(fault acted)} = @t{qw(promote seen)} if $scenario eq 'running';
	open my $tfh, '>', "$rdir/times";
	print $tfh map { "$_\t$t{$_}\n" } sort keys %t;
	# The writer's i-th request inserted first_id + i: the raw records need it.
	print $tfh "first_id\t$first_id\n";
	close $tfh;
	if ($scenario eq 'hung')
	{
		sleep 3;
		unhang();
	}
	sleep 4;
	open my $fh, '>', $stop_file;
	close $fh;
	kill 'TERM', values %pgbench;
	waitpid($_, 0) for (@pids, values %pgbench);

	rejoin($_) for current_replicas();
	$primary->append_conf('postgresql.conf', $sync);
	$primary->reload;
	$primary->wait_for_catchup($_, 'replay') for current_replicas();
	my @up = map { ($_->name, ($_ == $primary ? 'primary' : 'replica')) } values %nodes;
	for (my $i = 0; $i < @up; $i += 2)
	{
		$pw->wait_for_backend($up[$i], state => 'up', role => $up[ $i + 1 ], timeout => 60)
		  or diag "$scenario $n: $up[$i] not back as $up[$i + 1]";
	}
	return analyse($rdir, \%t, $new);
}

# --- what the clients saw ---

sub lines_of
{
	my ($file) = @_;
	return () unless -e $file;
	return map { [ split /\t/, $_, -1 ] } split /\n/, slurp_file($file);
}

# A request was in flight at the fault when it was answered after the fault
# began and sent before pgwing acted on it (the old primary gone or marked
# down, or, left running, the promotion seen): it was on the old node then.
# Any other was sent by a session that was between transactions.
sub in_flight
{
	my ($t, $sent, $done) = @_;
	return $sent < $t->{acted} && $done > $t->{fault} ? 'in_flight' : 'between';
}

sub analyse
{
	my ($rdir, $t, $new) = @_;
	my %r = (acked => 0, lost => 0, between => {}, in_flight => {}, notices => 0, stale => 0,
		reads => 0, pgbench_aborted => {}, lost_ids => []);
	# The writer's i-th request inserted the round's first id + i.
	my $i = 0;
	for my $w (lines_of("$rdir/write"))
	{
		my ($kind, $sent, $done, $outcome, $value, $notices) = @$w;
		my $when = in_flight($t, $sent, $done);
		$r{notices} += $notices;
		$r{$when}{"write $outcome"}++ if $outcome ne 'ok';
		push @{ $r{ack_list} }, [ $done, $i, $value ] if $outcome eq 'ok';
		$i++;
	}
	$r{acked} = @{ $r{ack_list} // [] };
	for my $rd (lines_of("$rdir/read"))
	{
		my ($kind, $sent, $done, $outcome, $value, $notices) = @$rd;
		$r{notices} += $notices;
		my $when = in_flight($t, $sent, $done);
		if ($outcome ne 'ok')
		{
			$r{$when}{"read $outcome"}++;
			next;
		}
		$r{reads}++;
		push @{ $r{read_list} }, [ $sent, $value ];
	}
	for my $l (lines_of("$rdir/idle"))
	{
		my ($kind, $sent, $done, $outcome, $value, $notices) = @$l;
		$r{notices} += $notices;
		# A notice while idle is counted with the notices, not as an error.
		next if $outcome eq 'ok' || $outcome eq 'unsolicited message N';
		my $when = in_flight($t, $sent, $done);
		$r{$when}{"$kind $outcome"}++;
	}
	for my $f (glob "$rdir/pgbench-*")
	{
		next if $f =~ /\.out$/;
		my ($what) = $f =~ /pgbench-(.*)$/;
		for my $line (split /\n/, slurp_file($f))
		{
			if ($line =~ /^progress: .*?([\d.]+) tps/)
			{
				$r{pgbench_tps} += $1;    # one line a second: the sum counts transactions
				next;
			}
			next unless $line =~ /aborted|error|fatal/i;
			(my $msg = $line) =~ s/\d+/N/g;
			$r{pgbench_aborted}{"$what: $msg"}++;
		}
	}
	$r{t}   = $t;
	$r{new} = $new;
	return \%r;
}

# Ids, stale reads and promote -> first write, given the round's first id.
sub settle
{
	my ($r, $first_id, $present) = @_;
	my @acked_ids;
	my $first_write;
	for my $a (@{ $r->{ack_list} // [] })
	{
		my ($done, $i, $port) = @$a;
		my $id = $first_id + $i;
		push @acked_ids, [ $done, $id ];
		push @{ $r->{lost_at} },  $done unless $present->{$id};
		push @{ $r->{lost_ids} }, $id   unless $present->{$id};
		$first_write //= $done - $r->{t}{promoted}
		  if $port == $r->{new}->port && $done > $r->{t}{promoted};
	}
	$r->{lost} = @{ $r->{lost_ids} };
	# From the first lost acknowledgement to the last: the split-brain window
	# this round (acknowledgements are in order, one writer).
	$r->{lost_span} = $r->{lost_at}[-1] - $r->{lost_at}[0] if $r->{lost};
	$r->{first_write} = $first_write;
	# A read is as old as the first acknowledged id it missed: how long before
	# it was sent that id was acknowledged (one writer: ids are acknowledged in
	# order). Stale when older than max_replica_lag; pgwing's documented bound
	# is max_replica_lag plus about a health_interval, as lags are recomputed
	# at probes (doc/config.md, "Replica lag").
	my %lost = map { $_ => 1 } @{ $r->{lost_ids} };
	my @sorted = sort { $a->[0] <=> $b->[0] } grep { !$lost{ $_->[1] } } @acked_ids;
	$r->{stale_age} = 0;
	for my $rd (@{ $r->{read_list} // [] })
	{
		my ($sent, $value) = @$rd;
		my $missed = first { $_->[1] > $value } @sorted;
		next unless $missed && $missed->[0] < $sent;
		my $age = $sent - $missed->[0];
		$r->{stale}++ if $age > $max_lag_s;
		$r->{stale_beyond}++ if $age > $max_lag_s + $interval_s;
		$r->{stale_age} = $age if $age > $r->{stale_age};
	}
}

my %results;
for my $n (1 .. $rounds)
{
	for my $scenario (@scenarios)
	{
		my $first_id = 1 + $primary->safe_psql('postgres', 'SELECT coalesce(max(id), 0) FROM acks');
		my $started  = time;
		my $r        = round($scenario, $n, $first_id);
		my %present  = map { $_ => 1 } split /\n/,
		  $primary->safe_psql('postgres', "SELECT id FROM acks WHERE id >= $first_id");
		settle($r, $first_id, \%present);
		push @{ $results{$scenario} }, $r;
		note sprintf('%s %d: %.0f s, acked %d, lost %d, first write %.3f s, between %s, '
			  . 'in flight %s, stale %d (oldest %.3f s), notices %d, pgbench %s',
			$scenario, $n, time - $started, $r->{acked}, $r->{lost},
			$r->{first_write} // -1, join(',', %{ $r->{between} }) || '-',
			join(',', %{ $r->{in_flight} }) || '-', $r->{stale} // 0, $r->{stale_age},
			$r->{notices},
			join(',', %{ $r->{pgbench_aborted} }) || '-');
	}
}

# --- the report ---

sub median
{
	my @v = sort { $a <=> $b } @_;
	return undef unless @v;
	return @v % 2 ? $v[ $#v / 2 ] : ($v[ @v / 2 - 1 ] + $v[ @v / 2 ]) / 2;
}

sub merged
{
	my ($rs, $key) = @_;
	my %m;
	for my $r (@$rs)
	{
		$m{$_} += $r->{$key}{$_} for keys %{ $r->{$key} };
	}
	return join(', ', map { "$_: $m{$_}" } sort keys %m) || 'none';
}

my @report = ("pgwing soak: $rounds round(s) per scenario, health_interval $interval, "
	  . "max_replica_lag $max_lag, $nidle idle sessions, pgbench -S -c $pgb_c -R $pgb_rate x "
	  . "{simple,extended,prepared} x {rw,ro}");
for my $scenario (@scenarios)
{
	my $rs = $results{$scenario};
	my @fw   = grep { defined } map { $_->{first_write} } @$rs;
	my @span = grep { defined } map { $_->{lost_span} } @$rs;
	push @report, '',
	  sprintf('== %s (%d rounds)', $scenario, scalar @$rs),
	  sprintf('acknowledged commits: %d, lost: %d%s', sum0(map { $_->{acked} } @$rs),
		sum0(map { $_->{lost} } @$rs),
		(grep { $_->{lost} } @$rs)
		? ' (ids ' . join(' ', map { @{ $_->{lost_ids} } } @$rs) . ')'
		: ''),
	  (@span
		? sprintf('lost acknowledgements span (first to last, in a round that lost any): '
			  . 'median %.3f s, max %.3f s (%d rounds)',
			median(@span), max(@span), scalar @span)
		: ()),
	  'errors between transactions: ' . merged($rs, 'between'),
	  'errors in flight: ' . merged($rs, 'in_flight'),
	  sprintf('pgbench: about %.0f transactions; clients aborted: %s',
		sum0(map { $_->{pgbench_tps} // 0 } @$rs), merged($rs, 'pgbench_aborted')),
	  sprintf('notices seen by sessions: %d', sum0(map { $_->{notices} } @$rs)),
	  sprintf('promote -> first write: median %s s, max %s s (%d of %d rounds wrote)',
		@fw ? sprintf('%.3f', median(@fw)) : '-', @fw ? sprintf('%.3f', max(@fw)) : '-',
		scalar @fw, scalar @$rs),
	  sprintf('stale reads: %d of %d; beyond max_replica_lag + health_interval: %d; '
		  . 'oldest read: %.3f s',
		sum0(map { $_->{stale} } @$rs), sum0(map { $_->{reads} } @$rs),
		sum0(map { $_->{stale_beyond} // 0 } @$rs), max(0, map { $_->{stale_age} } @$rs));
}
diag join("\n", @report);
open my $rfh, '>', "$dir/report.txt" or die $!;
print $rfh join("\n", @report), "\n";
close $rfh;
note "report in $dir/report.txt";

$pw->stop;
$_->stop('immediate', fail_ok => 1) for values %nodes;
done_testing();
