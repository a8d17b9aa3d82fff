# A login storm: 5000 clients connect at the same moment against
# max_client_conn = 4000. The first 4000 log in (ReadyForQuery) and a sample
# of them run a query; the other 1000 get 53300 at once, not at a timeout.
# Idle logged-in clients cost no Postgres backend (a pool that has logged in
# once answers later logins itself and takes a server at the first query).
# When they all leave, pgwing's fds and memory are back to where they were.
#
# PGWING_STORM_CLIENTS / PGWING_STORM_MAX scale it down for development; the
# test says so in its output.
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;
use Time::HiRes qw(time sleep);

my $nclients = $ENV{PGWING_STORM_CLIENTS} // 5000;
my $max      = $ENV{PGWING_STORM_MAX}     // 4000;
my $sample   = 50;
diag "SCALED DOWN by PGWING_STORM_CLIENTS/PGWING_STORM_MAX: $nclients clients, "
  . "max_client_conn $max (the issue asks for 5000/4000)"
  if $nclients != 5000 || $max != 4000;
my $storm_bin = tool_bin('storm');

# Each side holds one descriptor per connection (pgwing: plus the rejected
# ones while it answers them). Both raise their soft limit to the hard one.
my $hard = `sh -c 'ulimit -Hn'`;
chomp $hard;
my $need = $nclients + 100;
if ($hard ne 'unlimited' && $hard < $need)
{
	diag "!!! the hard open-files limit is $hard; this test needs $need for "
	  . "$nclients clients. Raise it (ulimit -Hn, limits.conf, systemd LimitNOFILE) "
	  . "or scale the test explicitly with PGWING_STORM_CLIENTS/PGWING_STORM_MAX.";
	fail("hard fd limit $hard fits $nclients clients");
	done_testing();
	exit;
}

# Backends for the sampled queries and the probes only: the logins must not
# take one each.
my $node = new_node('primary', max_connections => 100,
	conf => "shared_buffers = 32MB\nlog_connections = off");
my $pw = PgWing::Test->new(backends => [ [ primary => $node ] ], auth_type => 'trust',
	settings => { max_client_conn => $max, client_login_timeout => '60s' });
$pw->start;
# pgwing's server connections from the storm's sessions (kept in the pool
# after their clients leave, until server_idle_timeout).
sub storm_backends
{
	return $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE application_name = 'storm'");
}

# A pool logs in once through a plain client, so the storm finds it warm.
is($pw->safe_psql('SELECT 1', application_name => 'storm'), '1', 'warm-up login');
sleep 1;
my ($fds0, $rss0, $servers0) = ($pw->open_fds, $pw->rss_kb, storm_backends());
note "before the storms: $fds0 fds, RSS $rss0 kB, $servers0 pooled servers";
# What may stay after a storm: heap pages that long-lived allocations made
# during it keep in use -- libevent's per-descriptor map entries (one for
# every fd number ever used, kept for the loop's life), pooled servers -- about
# 9 MB after 5000 connections (from 120 MB with them). What must not stay is
# memory per session: the second storm must not add to the first one's level,
# where 4000 sessions leaking even 1 kB each would add 4 MB.
my $rss_slack_kb = 16 * 1024;
my $rss_growth_kb = 2048;

# One storm, and pgwing once its clients have left. The second storm shows
# that nothing stays behind per storm.
sub storm
{
	my ($round) = @_;
	my ($in, $out, $err) = ('', '', '');
	my $pooled = storm_backends();
	my $t0 = time;
	my $h = IPC::Run::start(
		[ $storm_bin, $pw->connstr(application_name => 'storm'), $nclients, $sample ],
		'<', \$in, '>', \$out, '2>', \$err, IPC::Run::timeout(300));
	$h->pump until $out =~ /^logins .*\n/m;
	my %r = $out =~ /(\w+)=(\d+)/g;
	my $backends_idle = storm_backends();
	my ($fds_held, $rss_held) = ($pw->open_fds, $pw->rss_kb);
	$in .= "query\n";
	$h->pump until $out =~ /^queries .*\n/m;
	note "storm $round: $out";
	note "storm $round stderr: $err" if $err ne '';
	note "holding $r{ok} idle clients: $fds_held fds, RSS $rss_held kB, "
	  . "$backends_idle backends";

	is($r{ok}, $max, "storm $round: $max clients log in (ReadyForQuery)");
	is($r{rejected}, $nclients - $max,
		"storm $round: the rest get 53300 too many connections");
	is($r{failed} + $r{pending}, 0, "storm $round: no other failure, nobody left hanging");
	# "At once": answered when their startup packet is read, long before the
	# 60 s client_login_timeout would cut them.
	cmp_ok($r{rejected_max_ms}, '<', time_bound(20) * 1000,
		"storm $round: rejections come promptly, not at a timeout");
	my ($qok, $qof) = $out =~ /queries ok=(\d+) of (\d+)/;
	ok($qof > 0 && $qok == $qof,
		"storm $round: a sample of the logged-in sessions runs a query ($qok of $qof)");
	# Servers pooled before the storm may still be there; nothing beyond them.
	cmp_ok($backends_idle, '<=', $pooled,
		"storm $round: idle logged-in clients hold no backend ($backends_idle, $pooled pooled)");

	$in .= "close\n";
	$h->pump until $out =~ /^closed$/m;
	$h->finish;
	# Back to the baseline: the fds less the pooled servers' sockets, and
	# RSS, once pgwing has given the freed heap back (it looks every 2 s).
	my ($fds, $rss, $servers);
	for (1 .. 50)
	{
		($fds, $rss, $servers) = ($pw->open_fds, $pw->rss_kb, storm_backends());
		last if $fds - $servers <= $fds0 - $servers0 + 2 && $rss - $rss0 < $rss_slack_kb;
		sleep 0.2;
	}
	# Their memory is given back at the next look, up to 2 s after they left:
	# measured before it, a storm that left RSS under the slack would count
	# the clients it held.
	sleep 2.5;
	$rss = $pw->rss_kb;
	note sprintf('storm %d: after they left (%.0f s in all): %d fds, %d pooled servers, '
		  . 'RSS %d kB', $round, time - $t0, $fds, $servers, $rss);
	cmp_ok($fds - $servers, '<=', $fds0 - $servers0 + 2,
		"storm $round: fds back to baseline ($fds with $servers pooled servers, "
		  . "was $fds0 with $servers0)");
	cmp_rss($rss - $rss0, '<', $rss_slack_kb,
		"storm $round: RSS back near baseline ($rss kB, was $rss0 kB)");
	return $rss;
}

my $rss1 = storm(1);
my $rss2 = storm(2);
cmp_rss($rss2 - $rss1, '<', $rss_growth_kb,
	"a second storm leaves nothing behind ($rss2 kB after it, $rss1 kB after the first)");
is($pw->safe_psql('SELECT 1', timeout => 60), '1', 'pgwing still serves');
$pw->stop;
done_testing();
