# What one logged-in client can make pgwing hold is bounded:
# - a client waiting for a server (the pool is full) that streams queries is
#   read up to forward_buffer_size, then not at all until it has a server:
#   what it sends waits in its own socket, not in pgwing's memory;
# - session statements of one transaction are kept up to
#   max_session_sql_size: a transaction that sets more keeps its session on
#   its server (pinned) instead of growing pgwing.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;
use IO::Select;
use POSIX ();
use Errno qw(EAGAIN EWOULDBLOCK);
use Time::HiRes qw(time sleep);

my $node = new_node('primary');
my $pw = PgWing::Test->new(
	backends  => [ [ primary => $node ] ],
	auth_type => 'trust',
	settings  => {
		default_pool_size   => 2,
		server_idle_timeout => '1s',
		hold_timeout        => '120s',
		forward_buffer_size => '256kB'
	});
$pw->start;

# Read answers up to the next ReadyForQuery; returns its status, or undef.
sub until_ready
{
	my ($s, $timeout) = @_;
	while (1)
	{
		my ($t, $b) = read_message($s, $timeout // 30);
		return undef unless defined $t;
		return $b if $t eq 'Z';
	}
}

# --- A waiting client that streams ---------------------------------------
# Two sessions in a transaction fill the pool (default_pool_size 2). They log
# in with the same startup parameters as the third, so the pool knows its
# welcome and takes it in without a server.
my @busy = map { $pw->raw_connect } 1 .. 2;
for my $b (@busy)
{
	ok(raw_login($b)->{ok}, 'a busy session logs in');
	print $b pg_message('Q', "BEGIN; SELECT 1\0");
	is(until_ready($b), 'T', 'and opens a transaction');
}
my $s = $pw->raw_connect;
ok(raw_login($s)->{ok}, 'a third client logs in (welcomed without a server)');
my $rss0 = $pw->rss_kb;
$s->blocking(0);
my $chunk = pg_message('Q', "SELECT 1\0") x 4096;
my ($sent, $t0) = (0, time);
while (time - $t0 < 3)
{
	my $n = syswrite($s, $chunk);
	if (defined $n) { $sent += $n; next; }
	last unless $! == EAGAIN || $! == EWOULDBLOCK;
	# The socket is full: pgwing stopped reading. Give it a chance to change its mind.
	IO::Select->new($s)->can_write(0.1);
}
my $rss1 = $pw->rss_kb;
note sprintf('waiting client: %.1f MB accepted in 3 s; pgwing RSS %d kB -> %d kB',
	$sent / 1e6, $rss0, $rss1);
cmp_ok($sent, '<', 64 << 20,
	'a waiting client is not read past forward_buffer_size (its writes block)');
cmp_rss($rss1 - $rss0, '<', 32 * 1024, 'pgwing memory stays bounded while it waits');
ok($pw->alive, 'pgwing alive');

# A server frees up: the waiting client is served, in order, and read again.
for my $b (@busy)
{
	print $b pg_message('Q', "COMMIT\0");
	until_ready($b);
}
$s->blocking(1);
my $answered = 0;
for (1 .. 20)
{
	last unless defined until_ready($s, 30);
	$answered++;
}
is($answered, 20, 'once a server is free the waiting client gets its answers');
close $s;
close $_ for @busy;

# --- Session statements in one transaction -----------------------------------
# The session's server pid, and whether it changes across an idle period long
# enough for server_idle_timeout to release the server and close it.
sub moves_after_idle
{
	my ($sock) = @_;
	my $pid_of = sub {
		print $sock pg_message('Q', "SELECT pg_backend_pid()\0");
		my $pid;
		while (1)
		{
			my ($t, $b) = read_message($sock, 30);
			return undef unless defined $t;
			$pid = substr($b, 6) if $t eq 'D';
			return $pid if $t eq 'Z';
		}
	};
	my $before = $pid_of->();
	sleep(3.5);
	my $after = $pid_of->();
	return $before ne $after;
}

my $big = 'x' x 60_000;
my $nsets = 1000;
$s = $pw->raw_connect;
ok(raw_login($s)->{ok}, 'session for the SET flood logs in');
ok(moves_after_idle($s), 'control: an idle session with small state moves to another server');

$rss0 = $pw->rss_kb;
print $s pg_message('Q', "BEGIN\0");
until_ready($s);
# Pipelined: all the SETs in flight at once, then their answers.
my $sets = join('', map { pg_message('Q', "SET application_name = '$_' -- $big\0") } 1 .. $nsets);
my $writer = fork // die "fork: $!";
if ($writer == 0)
{
	print $s $sets;
	# Not exit: the test's END blocks (which stop the nodes) belong to the parent.
	POSIX::_exit(0);
}
my $ok = 0;
for (1 .. $nsets) { $ok++ if (until_ready($s) // '') eq 'T'; }
waitpid($writer, 0);
$rss1 = $pw->rss_kb;
note sprintf('%d SETs of 60 kB in one transaction: pgwing RSS %d kB -> %d kB',
	$nsets, $rss0, $rss1);
is($ok, $nsets, "$nsets SETs of 60 kB answered inside the transaction");
cmp_rss($rss1 - $rss0, '<', 24 * 1024,
	'pgwing does not keep them all (max_session_sql_size)');
print $s pg_message('Q', "COMMIT\0");
is(until_ready($s), 'I', 'COMMIT');
ok(!moves_after_idle($s), 'the session that set more than it can replay keeps its server');
print $s pg_message('Q', "SHOW application_name\0");
my $name = '';
while (1)
{
	my ($t, $b) = read_message($s, 30);
	last unless defined $t;
	$name = substr($b, 6) if $t eq 'D';
	last if $t eq 'Z';
}
is($name, $nsets, 'and the last SET is in force');
close $s;

$pw->stop;
done_testing();
