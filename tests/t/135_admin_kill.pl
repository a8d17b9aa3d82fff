# An administrator's kill of a session's backend (pg_terminate_backend)
# reaches the client as Postgres sends it, idle or mid-query: FATAL 57P01,
# then the end of the connection, nothing run again (#19 item 13). Postgres
# says the same 57P01 when it shuts down; then the backend refuses new
# connections, and the session moves as before.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;
use Time::HiRes qw(time);

my $node = new_node('primary');
my $pw = PgWing::Test->new(
	backends  => [ [ primary => $node ] ],
	auth_type => 'trust');
$pw->start;

# Everything one simple Query brings until ReadyForQuery or the end: rows
# (first column), the error's fields, and eof when the connection ended.
sub answer
{
	my ($sock, $timeout) = @_;
	my %res = (rows => []);
	while (1)
	{
		my ($t, $b) = read_message($sock, $timeout // 30);
		if (!defined $t)
		{
			$res{ $b eq 'eof' ? 'eof' : 'timeout' } = 1;
			return \%res;
		}
		push @{ $res{rows} }, substr($b, 6, unpack('N', substr($b, 2, 4))) if $t eq 'D';
		$res{error} = error_fields($b) if $t eq 'E';
		return \%res if $t eq 'Z';
	}
}

sub query
{
	my ($sock, $sql, $timeout) = @_;
	print $sock pg_message('Q', "$sql\0");
	return answer($sock, $timeout);
}

sub connect_to
{
	my ($port) = @_;
	my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp')
	  or die "connect: $!";
	$sock->autoflush(1);
	ok(raw_login($sock)->{ok}, "logged in on port $port");
	return $sock;
}

sub kill_backend
{
	my ($pid) = @_;
	$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
	return;
}

# What the next statement of an idle session whose backend was killed
# brings, directly and through pgwing.
my %idle;
for my $via ([ direct => $node->port ], [ pgwing => $pw->rw_port ])
{
	my ($name, $port) = @$via;
	my $sock = connect_to($port);
	my ($pid) = @{ query($sock, 'SELECT pg_backend_pid()')->{rows} };
	kill_backend($pid);
	# print fails once the peer is gone: the client reads what it left.
	local $SIG{PIPE} = 'IGNORE';
	$idle{$name} = query($sock, 'SELECT 1');
	close $sock;
}
ok($idle{direct}{error} && $idle{direct}{eof}, 'idle, direct: FATAL, then the end');
is_deeply(
	[ @{ $idle{pgwing}{error} }{qw(S C M)}, $idle{pgwing}{eof} ],
	[ @{ $idle{direct}{error} }{qw(S C M)}, $idle{direct}{eof} ],
	'idle: the killed session hears what a direct one hears, and ends');
is_deeply($idle{pgwing}{rows}, [], 'idle: the statement did not run elsewhere');

# Killed mid-query: Postgres's FATAL, not 08006, and the read is not run
# again (it would sleep another 30 s).
my $sock = connect_to($pw->rw_port);
my ($pid) = @{ query($sock, 'SELECT pg_backend_pid()')->{rows} };
print $sock pg_message('Q', "SELECT pg_sleep(30)\0");
$node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE pid = $pid AND state = 'active'")
  or die 'the query did not start';
my $start = time;
kill_backend($pid);
my $mid = answer($sock, 20);
is($mid->{error}{S} . ' ' . $mid->{error}{C}, 'FATAL 57P01', 'mid-query: FATAL 57P01 relayed');
is($mid->{error}{M}, 'terminating connection due to administrator command',
	"mid-query: Postgres's message");
ok($mid->{eof}, 'mid-query: the session ended');
cmp_ok(time - $start, '<', time_bound(10), 'mid-query: nothing ran again');
close $sock;

# A shutdown says 57P01 too, but the backend is going: the idle session moves.
$sock = connect_to($pw->rw_port);
($pid) = @{ query($sock, 'SELECT pg_backend_pid()')->{rows} };
$node->restart;
my $after = query($sock, 'SELECT pg_backend_pid()');
ok(!$after->{error} && !$after->{eof}, 'restart: the idle session goes on')
  or diag explain $after;
isnt($after->{rows}[0], $pid, 'restart: on a new backend');
close $sock;

$pw->stop;
done_testing();
