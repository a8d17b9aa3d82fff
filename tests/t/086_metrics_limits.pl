# The metrics endpoint against hostile or careless scrapers: a scrape before
# any pool exists, silent connections (closed after metrics_timeout), a flood
# of headers and a request line that never ends (refused at
# metrics_max_request_size, without memory growth or a busy loop), and more
# scrapers than metrics_max_conn while pgwing is short of descriptors (the
# extra ones wait in the backlog; Postgres clients keep being served), and a
# reload of those settings.
use strict;
use warnings;
use Errno qw(EAGAIN EWOULDBLOCK);
use IO::Select;
use IO::Socket::INET;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;
use Time::HiRes qw(time sleep);

$SIG{PIPE} = 'IGNORE';    # writing to a connection pgwing closed is expected here

# The waits below decide only when to give up; a slow (valgrind) pgwing stretches them.

my $metrics_port = PostgreSQL::Test::Cluster::get_free_port();
my $timeout_s    = 1;
my $max_conn     = 8;
my $node         = new_node('primary');
my $pw = PgWing::Test->new(
	backends => [ [ primary => $node ] ],
	settings => {
		metrics_listen   => "127.0.0.1:$metrics_port",
		metrics_timeout  => "${timeout_s}s",
		metrics_max_conn => $max_conn,
		admin_users      => os_user(),
	});
$pw->start;
my $pid = $pw->pid;

# Metrics connections pgwing accepted (those in the backlog have no process).
sub accepted_scrapers
{
	my @l = grep { /pid=$pid,/ }
	  `ss -tnpH state established '( sport = :$metrics_port )'`;
	return scalar @l;
}

sub scrape
{
	my ($max_time) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run(
		[
			'curl', '-sS', '-f', '--max-time', $max_time // time_bound(10),
			"http://127.0.0.1:$metrics_port/metrics"
		],
		'>', \$out, '2>', \$err);
	return ($? == 0, $out, $err);
}

sub metrics_connect
{
	return IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $metrics_port,
		Proto => 'tcp', Timeout => 5);
}

# Whether pgwing closed $sock within $secs: EOF (or a reset) on read.
sub closed_within
{
	my ($sock, $secs) = @_;
	my $deadline = time + $secs;
	my $sel      = IO::Select->new($sock);
	while (1)
	{
		if ($sel->can_read(0.1))
		{
			my $r = sysread($sock, my $buf, 65536);
			return 1 if !defined $r || $r == 0;
		}
		return 0 if time >= $deadline;
	}
}

# How many of the sockets pgwing closed (or sent anything on) by now.
sub readable_now { my @r = IO::Select->new(@_)->can_read(0); return scalar @r; }

# Write $total bytes of $chunk-sized pieces (the first being $head) as fast
# as pgwing takes them; stops when pgwing closes the connection. Returns the
# bytes written and whether the connection was closed.
sub flood
{
	my ($sock, $head, $piece, $total, $secs) = @_;
	$sock->blocking(0);
	my $sent     = 0;
	my $deadline = time + $secs;
	my $pending  = $head;
	my $sel      = IO::Select->new($sock);
	while ($sent < $total && time < $deadline)
	{
		$pending = $piece if $pending eq '';
		my $w = syswrite($sock, $pending);
		if (!defined $w)
		{
			return ($sent, 1) unless $! == EAGAIN || $! == EWOULDBLOCK;
			$sel->can_write(0.1);
			next;
		}
		$sent += $w;
		substr($pending, 0, $w) = '';
	}
	return ($sent, closed_within($sock, time_bound(5)));
}

# 1. The first scrape, and SHOW STATS, before any client made a pool.
my ($ok, $body, $err) = scrape();
ok($ok, 'a scrape before any pool exists is answered') or diag $err;
like($body, qr/^# TYPE pgwing_queries_total counter$/m, 'with the traffic families');
ok($pw->alive, 'pgwing is alive after it');
my ($rc, $out, $perr) = $pw->psql('SHOW STATS', dbname => 'pgwing');
is($rc, 0, 'SHOW STATS before any pool exists') or diag $perr;
is($pw->safe_psql('SELECT 1'), '1', 'a client is served');

# 2. Silent connections are closed after metrics_timeout.
my $rss_silent = $pw->rss_kb;
my @silent = map { metrics_connect() or die "connect: $!" } 1 .. $max_conn - 2;
sleep 0.2;
is(readable_now(@silent), 0, 'silent scrapers are connected at first');
my $t0     = time;
my $closed = grep { closed_within($_, time_bound(4 * $timeout_s + 2)) } @silent;
my $took   = time - $t0;
is($closed, scalar @silent, "silent scrapers are closed after metrics_timeout ($timeout_s s)");
note sprintf('silent scrapers closed %.1f s after the first check; pgwing RSS %d -> %d kB',
	$took, $rss_silent, $pw->rss_kb);
close $_ for @silent;

# 3. 64 MB of headers: refused at metrics_max_request_size (16kB), RSS flat.
my $rss0 = $pw->rss_kb;
my $sock = metrics_connect() or die "connect: $!";
my ($sent, $was_closed) = flood($sock, "GET /metrics HTTP/1.1\r\nHost: x\r\n",
	'X-Junk: ' . ('a' x 1014) . "\r\n", 64 << 20, time_bound(30));
my $rss1 = $pw->rss_kb;
note sprintf('header flood: %.1f MB sent before the close; pgwing RSS %d -> %d kB',
	$sent / 1048576, $rss0, $rss1);
ok($was_closed, 'a flood of headers is refused: pgwing closes the connection');
# What the kernel's socket buffers take before the close, not pgwing.
cmp_ok($sent, '<', 16 << 20, 'long before the flood is through');
cmp_rss($rss1 - $rss0, '<', 8 * 1024, 'pgwing RSS grows under 8 MB with a header flood');
close $sock;

# 4. A request line that never ends, in small pieces (each a read of its
# own): refused at the limit instead of being rescanned at every read.
$rss0 = $pw->rss_kb;
$sock = metrics_connect() or die "connect: $!";
my $cpu0 = $pw->cpu_seconds;
$t0 = time;
($sent, $was_closed) = flood($sock, 'GET /', 'a' x 256, 64 << 20, time_bound(5));
# At least 2 s, so a clock tick of CPU does not weigh on a short window.
sleep 2 - (time - $t0) if time - $t0 < 2;
my $cpu  = $pw->cpu_seconds - $cpu0;
my $wall = time - $t0;
$rss1 = $pw->rss_kb;
note sprintf(
	'endless request line: %.1f MB sent in %.1f s, pgwing used %.2f s CPU; RSS %d -> %d kB',
	$sent / 1048576, $wall, $cpu, $rss0, $rss1);
ok($was_closed, 'a request line that never ends is refused: pgwing closes the connection');
cmp_ok($sent, '<', 16 << 20, 'long before 16 MB of it');
cmp_ok($cpu, '<', cpu_share_bound(0.2) * $wall, 'no busy loop rescanning the line');
close $sock;
ok($pw->alive, 'pgwing is alive after the floods');

# 5. More scrapers than descriptors: lower pgwing's soft fd limit to leave
# $headroom free, then 100 silent scrapers arrive. At most metrics_max_conn
# are accepted; the others wait in the backlog, and clients are still served.
my $headroom = 3 * $max_conn;
my $base_fds = $pw->open_fds;
my $limit    = $base_fds + $headroom;
system('prlimit', "--pid=$pid", "--nofile=$limit:") == 0
  or die "prlimit --pid $pid failed: cannot lower pgwing's fd limit";
$rss0 = $pw->rss_kb;
my @scrapers = map { metrics_connect() or die "connect: $!" } 1 .. 100;
sleep 0.5;
my $fds      = $pw->open_fds;
my $accepted = accepted_scrapers();
note "100 scrapers: $accepted accepted; pgwing has $fds fds (limit $limit, $base_fds before); "
  . "RSS $rss0 -> " . $pw->rss_kb . ' kB';
is($accepted, $max_conn, "metrics_max_conn ($max_conn) of them are accepted");
cmp_ok($fds - $base_fds, '<=', $max_conn + 2, 'pgwing has fds to spare');
($rc, $out, $perr) = $pw->psql('SELECT 1', timeout => time_bound(10));
is($out, '1', 'a client is served while 100 scrapers wait') or diag $perr;
# Those accepted time out and make room for the next: all are served or closed in turn.
($ok, $body, $err) = scrape(time_bound(30));
ok($ok, 'a scrape behind them is answered in turn') or diag $err;
close $_ for @scrapers;
ok($pw->alive, 'pgwing is alive');

# 6. A reload applies to the next connections: a lower cap, a longer timeout.
my $pos = $pw->log_position;
$pw->set(metrics_max_conn => 2, metrics_timeout => '60s');
$pw->write_config;
$pw->signal('HUP');
ok($pw->wait_for_log(qr/configuration reloaded/, $pos), 'reloaded');
@scrapers = map { metrics_connect() or die "connect: $!" } 1 .. 6;
sleep 0.5;
is(accepted_scrapers(), 2, 'the reloaded metrics_max_conn (2) holds');
is(readable_now(@scrapers), 0, 'none closed at once');
sleep 2 * $timeout_s;
is(readable_now(@scrapers), 0, 'nor after the old metrics_timeout: the reloaded one applies');
close $_ for @scrapers;

$pw->stop;
done_testing();
