# Running out of file descriptors with scrapers waiting on the metrics port:
# the metrics listener backs off as the client listeners do (one warning, no
# busy loop on the readable listening socket, no flood of accept errors in
# the log) and accepts again once descriptors free up.
use strict;
use warnings;
use IO::Socket::INET;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;
use Time::HiRes qw(time sleep);


my $metrics_port = PostgreSQL::Test::Cluster::get_free_port();
my $node         = new_node('primary');
# The cap is out of the way: here the scrapers run pgwing out of descriptors.
my $pw = PgWing::Test->new(
	backends => [ [ primary => $node ] ],
	settings => {
		metrics_listen   => "127.0.0.1:$metrics_port",
		metrics_timeout  => '60s',
		metrics_max_conn => 1000,
	});
$pw->start;
my $pid = $pw->pid;
is($pw->safe_psql('SELECT 1'), '1', 'a client is served');

sub scrape
{
	my ($out, $err) = ('', '');
	IPC::Run::run(
		[
			'curl', '-sS', '-f', '--max-time', time_bound(10),
			"http://127.0.0.1:$metrics_port/metrics"
		],
		'>', \$out, '2>', \$err);
	return ($? == 0, $out, $err);
}

# Leave a few descriptors free (soft limit only, so it can be raised back),
# and send more silent scrapers than they hold.
my ($soft) = `cat /proc/$pid/limits` =~ /^Max open files\s+(\d+)/m or die 'no fd limit';
my $headroom = 5;
my $limit    = $pw->open_fds + $headroom;
system('prlimit', "--pid=$pid", "--nofile=$limit:") == 0
  or die "prlimit --pid $pid failed: cannot lower pgwing's fd limit";
my $rss0     = $pw->rss_kb;
my $pos      = $pw->log_position;
my @scrapers = map {
	IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $metrics_port,
		Proto => 'tcp', Timeout => 5)
	  or die "connect: $!"
} 1 .. 4 * $headroom;
sleep 1;    # the accepts that fit are done; the others fail from now on
my $log0 = length $pw->log_content;
my $cpu0 = $pw->cpu_seconds;
my $t0   = time;
sleep 3;
my $cpu    = $pw->cpu_seconds - $cpu0;
my $wall   = time - $t0;
my $logged = length($pw->log_content) - $log0;
note sprintf('out of fds with scrapers waiting: %.2f s CPU in %.1f s, %d bytes logged, '
	  . 'fds %d/%d, RSS %d -> %d kB',
	$cpu, $wall, $logged, $pw->open_fds, $limit, $rss0, $pw->rss_kb);
ok($pw->alive, 'pgwing alive with its fds exhausted');
cmp_ok($cpu, '<', cpu_share_bound(0.1) * $wall, 'no busy loop: under 10% of a core while out of fds');
cmp_ok($logged, '<', 4096, 'the log is not flooded with accept errors');
my $log      = substr($pw->log_content, $pos);
my $warnings = () = $log =~ /WARNING .*accept failed: Too many open files/g;
is($warnings, 1, 'running out of fds is logged once, with the cause') or diag $pw->log_tail(10);

# Descriptors free up: the waiting scrapers get in, and a scrape is answered.
close $_ for @scrapers;
system('prlimit', "--pid=$pid", "--nofile=$soft:") == 0 or die "prlimit: cannot raise it back";
my ($ok, $body, $err) = scrape();
ok($ok, 'metrics are served again once fds free up') or diag $err;
like($body, qr/^pgwing_clients\{state="idle"\} \d+$/m, 'with their content');
is($pw->safe_psql('SELECT 1'), '1', 'a client is served');

$pw->stop;
done_testing();
