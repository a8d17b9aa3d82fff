# Running out of file descriptors: pgwing stops accepting (the clients wait in
# the backlog), says so once, does not spin on the listening socket, keeps
# serving the sessions it has, and accepts again once descriptors free up.
use strict;
use warnings;
use IO::Select;
use IO::Socket::INET;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;
use Time::HiRes qw(time sleep);

my $nheld    = 20;     # sessions logged in before the pressure
my $headroom = 10;     # fds left free when the limit is lowered
my $nclients = 100;    # then these arrive: far more than the headroom holds

my $node = new_node('primary', max_connections => 150);
# While accept is paused, arriving clients wait in the kernel's backlog.
my $backlog = 200;
my $pw = PgWing::Test->new(backends => [ [ primary => $node ] ], auth_type => 'trust',
	settings => { listen_backlog => $backlog });
$pw->start;
my $pid = $pw->pid;
my $ss = `ss -ltnH 'sport = :@{[ $pw->rw_port ]}'`;
is((split ' ', $ss)[2], $backlog, "the listening socket's backlog is listen_backlog ($backlog)")
  or diag "ss: $ss";

my $base_fds = $pw->open_fds;
my (%state, %buf, @socks);
sub connect_client
{
	my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $pw->rw_port,
		Proto => 'tcp', Timeout => 10) or die "connect: $!";
	$s->blocking(0);
	syswrite($s, startup_packet(user => os_user(), database => 'postgres',
		application_name => 'fdpressure'));
	push @socks, $s;
	$state{$s} = 'waiting';
	$buf{$s} = '';
	return $s;
}

# Read answers for $secs seconds: a client is 'ready' at ReadyForQuery,
# 'error' (with its SQLSTATE) at ErrorResponse, 'closed' at EOF.
my %sqlstate;
sub pump
{
	my ($secs, $until_done) = @_;
	my $deadline = time + $secs;
	while (time < $deadline)
	{
		my @open = grep { $state{$_} eq 'waiting' } @socks;
		last if $until_done && !@open;
		my $sel = IO::Select->new(@open);
		for my $s ($sel->can_read(0.2))
		{
			my $r = sysread($s, my $chunk, 65536);
			if (!$r)
			{
				$state{$s} = 'closed';
				next;
			}
			$buf{$s} .= $chunk;
			while (my ($t, $body) = take_message(\$buf{$s}))
			{
				if ($t eq 'Z')
				{
					$state{$s} = 'ready';
				}
				elsif ($t eq 'E')
				{
					$state{$s} = 'error';
					$sqlstate{ error_fields($body)->{C} }++;
				}
			}
		}
	}
	my %n = (waiting => 0, ready => 0, error => 0, closed => 0);
	$n{ $state{$_} }++ for @socks;
	return \%n;
}

connect_client() for 1 .. $nheld;
my $n = pump(20, 1);
is($n->{ready}, $nheld, "$nheld sessions logged in before the pressure");
my @held = grep { $state{$_} eq 'ready' } @socks;

# pgwing raises its soft limit to the hard one at startup; lower both under it.
my $fd_limit = $pw->open_fds + $headroom;
system('prlimit', "--pid=$pid", "--nofile=$fd_limit:$fd_limit") == 0
  or die "prlimit --pid $pid failed: cannot lower pgwing's fd limit";
note "pgwing: $base_fds fds at start, limit now $fd_limit";

# $nclients arrive at once; let the storm settle, then watch pgwing under pressure.
my $pos = $pw->log_position;
@socks = ();
connect_client() for 1 .. $nclients;
pump(3);
my $cpu0 = $pw->cpu_seconds;
my $t0   = time;
$n = pump(4);
my $cpu  = $pw->cpu_seconds - $cpu0;
my $wall = time - $t0;
note sprintf('under pressure: %d ready, %d waiting, %d error (%s), %d closed; fds %d/%d',
	$n->{ready}, $n->{waiting}, $n->{error},
	join(',', map { "$_ x$sqlstate{$_}" } sort keys %sqlstate),
	$n->{closed}, $pw->open_fds, $fd_limit);
note sprintf('pgwing used %.2f s CPU in %.1f s under pressure', $cpu, $wall);

ok($pw->alive, 'pgwing alive with its fds exhausted');
is($n->{error} + $n->{closed}, 0, 'no client is failed or dropped for want of fds');
cmp_ok($n->{waiting}, '>', 0, 'those that do not fit wait (accept paused)');
# A loop spinning on the readable listening socket would burn a whole core;
# paused, pgwing wakes only for its retry timers and health probes.
cmp_ok($cpu, '<', cpu_share_bound(0.1) * $wall, 'no busy loop: under 10% of a core while out of fds');

my $log = substr($pw->log_content, $pos);
# Whichever runs out first, accept() or a server connect, it is one warning.
my $warnings = () = $log =~ /WARNING .*failed: Too many open files/g;
is($warnings, 1, 'running out of fds is logged once, not once per retry, with the cause')
  or diag $pw->log_tail(20);
# Clients whose server connects fail for want of fds try again every 250 ms:
# one hold, logged as it starts, not an end and a start at every retry.
my $holds = () = $log =~ /holding clients/g;
my $ends  = () = $log =~ /hold ended/g;
cmp_ok($holds + $ends, '<=', 2, 'the hold is logged once, not at every retry')
  or diag "$holds starts, $ends ends:\n" . $pw->log_tail(20);

# Free descriptors: whoever is served leaves; the waiting clients get in and
# are served, as many at a time as the limit allows.
for my $s (@held, grep { $state{$_} eq 'ready' } @socks)
{
	syswrite($s, pg_message('X'));
	close $s;
	$state{$s} = 'left';
}
@socks = grep { $state{$_} eq 'waiting' } @socks;
$n = pump(15);
note sprintf('after the served clients left: %d ready, %d waiting, %d error, %d closed',
	$n->{ready}, $n->{waiting}, $n->{error}, $n->{closed});
# The descriptors freed ($nheld sessions' and the headroom) hold at most
# budget/2 clients with a server each; accepting a burst of clients would
# take them all and leave none for their servers, and nobody would be served
# (until hold_timeout; a burst got 11 served here, one at a time gets all
# 25). Three quarters of the most, within 15 s on a busy machine.
my $budget = 2 * $nheld + $headroom;
cmp_ok($n->{ready}, '>=', 0.75 * $budget / 2, 'waiting clients are served once fds free up');
is($n->{error} + $n->{closed}, 0, 'none of them failed');

# Everyone leaves; pgwing is back to normal.
for my $s (@socks)
{
	syswrite($s, pg_message('X')) if $state{$s} eq 'ready';
	close $s;
}
@socks = ();
# Servers the pool keeps for later clients hold a descriptor each; nothing else stays.
sub pooled_servers
{
	return $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE application_name = 'fdpressure'");
}
my $back = 0;
for (1 .. 40)
{
	last if ($back = $pw->open_fds - pooled_servers() <= $base_fds + 2);
	sleep 0.25;
}
ok($back, 'pgwing is back to its baseline fd count (less pooled servers)')
  or diag 'fds: ' . $pw->open_fds . ', pooled servers: ' . pooled_servers();
sleep 5;    # ACCEPT_QUIET_MS: the episode is over
is($pw->safe_psql('SELECT 1', timeout => 20), '1', 'a new client is served');
ok($pw->wait_for_log(qr/accepting new connections again/, $pos, 5),
	'the log says accepting works again');
$pw->stop;
done_testing();
