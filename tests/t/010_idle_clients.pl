# 1000 clients logged in at once and idle: pgwing holds them all on at most
# default_pool_size server sessions (the first logins; the others wait for the
# welcome those learn and get no server), every one still answers, a new client
# still gets in, and their servers are closed after server_idle_timeout once
# they left.
use strict;
use warnings;
use IO::Select;
use IO::Socket::INET;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;
use Time::HiRes qw(time);

my $n = $ENV{PGWING_IDLE_CLIENTS} // 1000;
my $node = new_node('primary', max_connections => $n + 50,
	conf => "shared_buffers = 32MB\nlog_statement = none");
my $pw = PgWing::Test->new(
	backends  => [ [ primary => $node ] ],
	auth_type => 'trust',
	settings  => { server_idle_timeout => '2s' });
$pw->start;

# Open all connections and send the startup packets, then read the answers
# as they come, all sockets at once.
my $t0 = time;
my (@socks, %buf, %state);
for my $i (1 .. $n)
{
	my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $pw->rw_port,
		Proto => 'tcp', Timeout => 10);
	if (!$s)
	{
		diag "connection $i failed: $!";
		last;
	}
	$s->blocking(0);
	syswrite($s, startup_packet(user => os_user(), database => 'postgres',
		application_name => 'idle1000'));
	push @socks, $s;
	$buf{$s} = '';
	$state{$s} = 'login';
}
is(scalar @socks, $n, "$n TCP connections accepted");

# Read until every socket is in state $want; returns how many got there.
# Each message type is passed to $on_msg($sock, $type, $body).
sub pump_all
{
	my ($want, $timeout, $on_msg) = @_;
	my $sel = IO::Select->new(grep { $state{$_} ne $want && $state{$_} ne 'dead' } @socks);
	my $deadline = time + $timeout;
	while ($sel->count && time < $deadline)
	{
		for my $s ($sel->can_read(1))
		{
			my $r = sysread($s, my $chunk, 65536);
			if (!$r)
			{
				$state{$s} = 'dead';
				$sel->remove($s);
				next;
			}
			$buf{$s} .= $chunk;
			while (my ($t, $body) = take_message(\$buf{$s}))
			{
				$on_msg->($s, $t, $body);
				if ($t eq 'Z')
				{
					$state{$s} = $want;
					$sel->remove($s);
					last;
				}
				if ($t eq 'E')
				{
					diag('error: ' . (error_fields($body)->{M} // '?'));
					$state{$s} = 'dead';
					$sel->remove($s);
					last;
				}
			}
		}
	}
	return scalar grep { $state{$_} eq $want } @socks;
}

my $ready = pump_all('idle', 180, sub { });
is($ready, $n, "all $n clients logged in (ReadyForQuery)");
note sprintf('%d logins took %.1f s', $ready, time - $t0);

# Idle clients hold no server beyond the first logins of the storm.
my $servers = $node->safe_psql('postgres',
	"SELECT count(*) FROM pg_stat_activity WHERE application_name = 'idle1000'");
note "$servers server sessions for $n idle clients";
cmp_ok($servers, '<=', 20, 'at most default_pool_size server sessions for them all');

if (open my $st, '<', '/proc/' . $pw->pid . '/status')
{
	my ($rss) = grep { /^VmRSS/ } <$st>;
	note "pgwing holding $n idle clients: $rss";
}

# A new client still gets served while they idle.
is($pw->safe_psql('SELECT 1'), '1', 'a new client is served while 1000 idle');

# Every idle client still answers a query.
my %answer;
for my $s (@socks)
{
	next unless $state{$s} eq 'idle';
	$s->blocking(1);
	syswrite($s, pg_message('Q', "SELECT 'alive'\0"));
	$s->blocking(0);
	$state{$s} = 'query';
}
my $answered = pump_all('done', 120,
	sub { my ($s, $t, $b) = @_; $answer{$s}++ if $t eq 'D' && $b =~ /alive/; });
is($answered, $n, 'every idle client answers a query');
is(scalar(keys %answer), $n, 'every one got its DataRow');

# Close them all: their servers are pooled, then closed after server_idle_timeout.
for my $s (@socks)
{
	$s->blocking(1);
	syswrite($s, pg_message('X'));
	close $s;
}
@socks = ();
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name = 'idle1000'"),
	'server sessions closed after the clients left');
is($pw->safe_psql('SELECT 2'), '2', 'still serving');

$pw->stop;
done_testing();
