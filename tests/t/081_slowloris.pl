# Slowloris: 500 clients that dribble their startup packet one byte a second
# are cut at client_login_timeout (08P01), and replaced as they go, so 500
# are always pending; meanwhile pgbench through pgwing keeps its throughput.
use strict;
use warnings;
use IO::Select;
use IO::Socket::INET;
use POSIX ();
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;
use Time::HiRes qw(time sleep);

my $nslow         = 500;
my $login_timeout = 3;    # seconds
my $rounds        = 3;    # pgbench runs without / with the slow clients
my $run_secs      = 2;

my $node = new_node('primary', conf => "log_connections = off");
$node->command_ok([ 'pgbench', '-i', '-s', '1', '-q', '-h', $node->host, '-p', $node->port,
	'postgres' ], 'pgbench -i');
my $pw = PgWing::Test->new(backends => [ [ primary => $node ] ], auth_type => 'trust',
	settings => { client_login_timeout => "${login_timeout}s" });
$pw->start;
my $results = "$PostgreSQL::Test::Utils::tmp_check/081_slowloris.results";

# The slow clients, in a child process until SIGTERM and then until pgwing has
# cut the last of them: each line of $results is "seconds-alive how-it-ended"
# for one client that pgwing cut, or "open seconds-alive" for one it did not.
sub slowloris
{
	my $packet = startup_packet(user => os_user(), database => 'postgres');
	my (%opened, %sent, @ended);
	my $sel = IO::Select->new;
	my $open = sub {
		my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $pw->rw_port,
			Proto => 'tcp', Timeout => 10) or die "slowloris connect: $!";
		$s->blocking(0);
		$opened{$s} = time;
		$sent{$s}   = 0;
		$sel->add($s);
	};
	my $stop = 0;
	local $SIG{TERM} = sub { $stop = 1 };
	$open->() for 1 .. $nslow;
	my $next_byte = time;
	my $deadline;
	# Told to stop, open no more and wait (a while) until pgwing has cut
	# every one still dribbling.
	while (!$stop || ($sel->count && time < ($deadline //= time + $login_timeout + 5)))
	{
		for my $s ($sel->can_read(0.1))
		{
			my $r = sysread($s, my $buf, 8192);
			next if !defined $r && $!{EAGAIN};
			my $how = 'eof';
			if ($r && $buf =~ /^E/)
			{
				my ($code) = $buf =~ /\0C(\w{5})\0/;
				$how = 'E' . ($code // '?');
			}
			push @ended, sprintf('%.2f %s', time - $opened{$s}, $how);
			$sel->remove($s);
			close $s;
			$open->() unless $stop;
		}
		if (time >= $next_byte)
		{
			for my $s ($sel->handles)
			{
				syswrite($s, substr($packet, $sent{$s}++ % length($packet), 1));
			}
			$next_byte += 1;
		}
	}
	open my $fh, '>', $results or die "$results: $!";
	print $fh "open $_\n" for map { sprintf('%.2f', time - $opened{$_}) } $sel->handles;
	print $fh "$_\n" for @ended;
	close $fh;
	POSIX::_exit(0);
}

# One pgbench client's transactions through pgwing for $run_secs s: their
# latencies in microseconds, from pgbench's per-transaction log.
my $run = 0;
sub latencies
{
	my $prefix = "$PostgreSQL::Test::Utils::tmp_check/081_pgbench_" . $run++;
	my $out = '';
	my @cmd = ('pgbench', '-n', '-S', '-c', '1', '-j', '1', '-T', $run_secs,
		'--log', "--log-prefix=$prefix",
		'-h', '127.0.0.1', '-p', $pw->rw_port, '-U', os_user(), 'postgres');
	IPC::Run::run(\@cmd, '>', \$out, '2>', \$out, IPC::Run::timeout(60))
	  or die "pgbench failed: $out";
	my @lat;
	for my $f (glob("$prefix.*"))
	{
		open my $fh, '<', $f or die "$f: $!";
		push @lat, map { (split)[2] } <$fh>;
		close $fh;
		unlink $f;
	}
	die "no transactions logged: $out" unless @lat;
	return @lat;
}

sub median { my @v = sort { $a <=> $b } @_; return $v[ $#v / 2 ]; }

sub start_slowloris
{
	my $pid = fork // die "fork: $!";
	if ($pid == 0)
	{
		# The child must never run the END blocks that stop the node and pgwing.
		eval { slowloris() };
		print STDERR "slowloris: $@";
		POSIX::_exit(1);
	}
	sleep 1;    # all connected and dribbling
	return $pid;
}

# Runs without and with the slow clients, alternately, so the neighbours'
# load comes and goes over both alike; the median transaction time of each.
sub slowdown
{
	my (@without, @with);
	for my $i (1 .. $rounds)
	{
		push @without, latencies();
		my $pid = start_slowloris();
		push @with, latencies();
		kill 'KILL', $pid;
		waitpid($pid, 0);
	}
	my ($m0, $m1) = (median(@without), median(@with));
	return ($m0 / $m1, sprintf('%d transactions at %d us without, %d at %d us with',
		scalar @without, $m0, scalar @with, $m1));
}

# The slow clients cost pgwing one read event per client per second and a
# timer each: next to nothing, so what this catches is a loop stalled by slow
# logins, which costs far more than 10% every time. Throughput measured as
# one client's median transaction time (TPS = 1 / latency for one client):
# on a shared 2-core machine a run's TPS swings by 2-3 times with the
# neighbours' load (and so does a concurrent reference run), while the median
# of thousands of transactions holds still. A noisy measurement is still taken
# again, up to three times -- a real slowdown shows in all three. Under
# ASan every event of pgwing's costs a few times more CPU, which the dribbling
# child and the other tests compete for on two cores: there it measured
# 0.70-0.89 in CI, so the bound is 40% (a stalled loop still costs more).
my $bound = is_sanitized() ? 0.6 : 0.9;
my (@attempts, $ratio, $detail);
for (1 .. 3)
{
	($ratio, $detail) = slowdown();
	push @attempts, sprintf('%.2f (%s)', $ratio, $detail);
	last if $ratio >= $bound;
}
cmp_ok($ratio, '>=', $bound,
	sprintf('pgbench keeps its TPS within %.0f%% with 500 slow clients: ', 100 * (1 - $bound))
	  . join('; ', @attempts));

# One more round of slow clients, told to stop at once: pgwing must cut every
# one of them at client_login_timeout.
my $pid = start_slowloris();
kill 'TERM', $pid;
waitpid($pid, 0);

# Every slow client pgwing cut was cut by the login timeout, with the reason.
open my $fh, '<', $results or die "$results: $!";
my @lines = <$fh>;
close $fh;
my @cut = grep { !/^open/ } @lines;
my @early = grep { (split)[0] < $login_timeout - 0.2 } @cut;
my @late  = grep { (split)[0] > $login_timeout + 3 } @cut;
my @still_open = grep { /^open/ } @lines;
note scalar(@cut) . ' slow clients cut';
cmp_ok(scalar @cut, '>=', $nslow, 'every slow client was cut');
is(scalar @early, 0, 'none before client_login_timeout') or diag "@early[0..4]";
is(scalar @late, 0, 'none long after it') or diag "@late[0..4]";
is(scalar @still_open, 0, 'none left open') or diag "@still_open[0..4]";
is(scalar(grep { !/ E08P01$/ } @cut), 0, 'each told why: ErrorResponse 08P01')
  or diag join('', grep { !/ E08P01$/ } @cut[0..9]);
like($pw->log_content, qr/login timed out/, 'the log says why they were cut');

is($pw->safe_psql('SELECT 1'), '1', 'pgwing serves afterwards');
$pw->stop;
done_testing();
