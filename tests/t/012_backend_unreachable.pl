# A backend that cannot be reached, or that never answers a login: the client
# gets 08006 naming the backend within server_connect_timeout + hold_timeout,
# instead of hanging; pgwing serves again when the backend is back.
use strict;
use warnings;
use IO::Select;
use POSIX ();
use IO::Socket::INET;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;
use Time::HiRes qw(time sleep);

my %timeouts = (server_connect_timeout => '1s', hold_timeout => '2s',
	health_interval => '200ms', health_timeout => '1s');
my $limit = time_bound(1 + 2 + 3);    # the timeouts plus slack

sub expect_08006
{
	my ($pw, $what, $backend_re) = @_;
	my $t0 = time;
	my $r = raw_login($pw->raw_connect, timeout => 30);
	my $elapsed = time - $t0;
	is($r->{error}{C}, '08006', "$what: 08006") or diag explain $r;
	like(($r->{error}{M} // '') . ' ' . ($r->{error}{D} // ''), $backend_re,
		"$what: the message names the backend");
	cmp_ok($elapsed, '<', $limit, "$what: answered within the timeouts");
	my ($rc, $out, $err) = $pw->psql('SELECT 1', timeout => 30);
	isnt($rc, 0, "$what: psql fails");
	like($err, $backend_re, "$what: psql shows the backend");
	ok($pw->alive, "$what: pgwing alive");
	return;
}

# 1. Nothing listens on the backend's port.
my $dead_port = PostgreSQL::Test::Cluster::get_free_port();
my $pw = PgWing::Test->new(
	name => 'refused',
	backends => [ [ primary => "host=127.0.0.1 port=$dead_port" ] ],
	settings => \%timeouts);
$pw->start;
expect_08006($pw, 'connection refused', qr/primary.*127\.0\.0\.1:$dead_port/);
$pw->stop;

# 2. Something accepts TCP but never speaks (a hung server).
my $hang_port = PostgreSQL::Test::Cluster::get_free_port();
my $hang = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $hang_port,
	Listen => 128, ReuseAddr => 1) or die "listen: $!";
$pw = PgWing::Test->new(
	name => 'hung',
	backends => [ [ pg_hung => "host=127.0.0.1 port=$hang_port" ] ],
	settings => \%timeouts);
$pw->start;
expect_08006($pw, 'server never answers', qr/pg_hung.*127\.0\.0\.1:$hang_port/);
$pw->stop;
close $hang;

# 3. The backend's health probes pass, but logins of clients hang: only
# server_connect_timeout stands between the client and a hang (the backend
# stays up, so nothing else would end the server's login).
{
	my $real = new_node('halfhung');
	my $port = PostgreSQL::Test::Cluster::get_free_port();
	my $lsock = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port,
		Listen => 128, ReuseAddr => 1) or die "listen: $!";
	my $pid = fork // die "fork: $!";
	if ($pid == 0)
	{
		# The child must never run the END blocks that stop the nodes and pgwing.
		eval { half_hung_backend($lsock, $real->port, os_user()) };
		POSIX::_exit(0);
	}
	close $lsock;
	$pw = PgWing::Test->new(name => 'halfhung',
		backends => [ [ pg_halfhung => "host=127.0.0.1 port=$port" ] ],
		settings => \%timeouts);
	$pw->start;
	ok($pw->wait_for_log(qr/pg_halfhung: \w+ -> up/, 0, 30),
		'half-hung backend: its probes pass');
	my $t0 = time;
	my $r = raw_login($pw->raw_connect, user => 'alice', timeout => 30);
	my $elapsed = time - $t0;
	is($r->{error}{C}, '08006', 'half-hung backend: the login gets 08006') or diag explain $r;
	like($r->{error}{M} // '', qr/pg_halfhung.*timeout after 1000 ms/,
		'half-hung backend: the message says its login timed out')
	  or diag explain $r;
	cmp_ok($elapsed, '<', $limit, 'half-hung backend: answered within the timeouts');
	unlike($pw->log_content, qr/pg_halfhung: up -> down/, 'half-hung backend: still up');
	$pw->stop;
	kill 'KILL', $pid;
	waitpid($pid, 0);
	$real->stop;
}

# A TCP front for Postgres: passes through the connections of $pass_user
# (the health probes), accepts the others and never answers them.
sub half_hung_backend
{
	my ($lsock, $pg_port, $pass_user) = @_;
	my $sel = IO::Select->new($lsock);
	my (%peer, %hung);
	while (1)
	{
		for my $s ($sel->can_read(1))
		{
			if ($s == $lsock)
			{
				my $c = $lsock->accept or next;
				my ($params, $startup) = read_startup($c);
				if (!$params || ($params->{user} // '') ne $pass_user)
				{
					$hung{$c} = $c;    # keep it open, say nothing
					next;
				}
				my $up = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
					PeerPort => $pg_port, Proto => 'tcp') or next;
				syswrite($up, $startup);
				@peer{ $c, $up } = ($up, $c);
				$sel->add($c, $up);
				next;
			}
			my $r = sysread($s, my $buf, 65536);
			my $other = $peer{$s};
			if (!$r)
			{
				$sel->remove($s, $other);
				delete @peer{ $s, $other };
				close $_ for $s, $other;
				next;
			}
			syswrite($other, $buf);
		}
	}
}

# 4. The backend goes away under pgwing, then comes back.
my $node = new_node('primary');
$pw = PgWing::Test->new(name => 'flaky', backends => [ [ primary => $node ] ],
	settings => \%timeouts);
$pw->start;
is($pw->safe_psql('SELECT 1'), '1', 'served while the backend is up');
my $held = $pw->background_psql(application_name => 'held');
$held->query_safe('SELECT 1');
$node->stop('immediate');
my $out = eval { $held->query('SELECT 2') };
ok(!defined $out || $out ne '2', 'a session whose server died gets an error, not a hang');
eval { $held->quit };
expect_08006($pw, 'backend stopped', qr/primary.*127\.0\.0\.1:\d+/);
$node->start;
my $back = 0;
for (1 .. 60)
{
	last if ($back = $pw->psql('SELECT 1', timeout => 10) == 0);
	sleep 0.5;
}
ok($back, 'served again once the backend is back');
$pw->stop;

done_testing();
