# A hung primary (SIGSTOP of the postmaster and all its children) is given up
# on once its probes mark it down: read-only autocommit queries in flight on it
# are answered by the replica promoted meanwhile, a write in flight gets 08006
# saying its outcome is unknown, and nothing waits for the hung node past the
# down verdict plus a bound. A read sent while the primary hangs, before the
# probes tell, and a login begun then, are served by the new primary too, and
# an idle session writes there. The same for reads on a hung replica: they
# run on another one.
# Server connections carry TCP keepalives (server_tcp_keepalive), so a silent
# partition is noticed by the data path too.
# The processes are always continued (END block), whatever happens.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;
use Time::HiRes qw(usleep time);

# near: the replica read-only clients prefer (same region as pgwing), to hang first.
my ($old, $new, $near) =
  primary_with_replicas('old', [ 'new', 'near' ], sql => 'CREATE TABLE t (v int)');

my $pw = start_pgwing_with(
	backends => [
		[ old  => $old,  region => 'far' ],
		[ new  => $new,  region => 'far' ],
		[ near => $near, region => 'here' ] ],
	settings => {
		region            => 'here',
		health_timeout    => '500ms',
		health_fail_count => 2,
		hold_timeout      => '20s',
		server_tcp_keepalive => '7s',
		# Longer than the test: only the down verdict may end a login to the hung node.
		server_connect_timeout => '30s',
	},
	up => [ old => 'primary', new => 'replica', near => 'replica' ]);

# The postmaster and its children, stopped and continued together.
my @stopped;

sub signal_all
{
	my ($sig, @pids) = @_;
	kill $sig, @pids;
}

END
{
	signal_all('CONT', @stopped) if @stopped;
}

sub session
{
	my ($what, $target) = @_;
	my $s = $pw->raw_connect(target => $target // 'rw');
	ok(raw_login($s)->{ok}, "$what: logged in");
	return $s;
}

# Messages up to ReadyForQuery within $timeout: (error fields or undef, first
# value, status or 'eof'/'timeout').
sub answer
{
	my ($sock, $timeout) = @_;
	my ($err, $value);
	while (1)
	{
		my ($t, $b) = read_message($sock, $timeout);
		return ($err, $value, $b) unless defined $t;
		$err = error_fields($b) if $t eq 'E';
		($value) = substr($b, 6, unpack('x2 N', $b)) if $t eq 'D' && !defined $value;
		return ($err, $value, $b) if $t eq 'Z';
	}
}

sub send_query
{
	my ($sock, $sql) = @_;
	print $sock pg_message('Q', "$sql\0");
}

# A hung replica: the reads in flight on it run on the other replica.
my @ro = map { session("ro reader $_", 'ro') } 1 .. 2;
for my $s (@ro)
{
	send_query($s, 'SELECT inet_server_port()');
	my (undef, $port) = answer($s, 10);
	is($port, $near->port, 'read-only session served by the near replica');
}
send_query($_, 'SELECT inet_server_port() FROM pg_sleep(2)') for @ro;
usleep(100_000);
@stopped = node_processes($near);
my $offset = $pw->log_position;
signal_all('STOP', @stopped);
ok($pw->wait_for_log(qr/backend near: up -> down/, $offset), 'the hung replica is marked down');
my $down_time = time();
for my $i (1 .. 2)
{
	my ($err, $port, $status) = answer($ro[ $i - 1 ], time_bound(5));
	is($port, $new->port, "read $i in flight on the hung replica is answered by the other one")
	  or diag explain [ $err, $status ];
}
cmp_ok(time() - $down_time, '<', time_bound(4), 'soon after the down verdict');
signal_all('CONT', @stopped);
@stopped = ();

# Every session first gets its server on the old primary.
my @readers = map { session("reader $_") } 1 .. 3;
my $writer = session('writer');
my $idle   = session('idle');
my $late   = session('speaks while the primary hangs');
for my $s (@readers, $writer, $idle, $late)
{
	send_query($s, 'SELECT inet_server_port()');
	my (undef, $port) = answer($s, 10);
	is($port, $old->port, 'session served by the old primary');
}

# A partition the probes have not seen yet is caught by the data path:
# every server connection has its keepalive timer armed at
# server_tcp_keepalive (the probes' libpq keeps the system's 2 h).
my $old_port = $old->port;
my @keepalive = grep {
	/:\Q$old_port\E\s.*timer:\(keepalive,(\d+(?:\.\d+)?)(ms|sec)/
	  && ($2 eq 'ms' ? $1 / 1000 : $1) <= 7
} split /\n/, `ss -tno state established`;
cmp_ok(scalar @keepalive, '>=', 5, 'server connections send keepalives after server_tcp_keepalive')
  or diag `ss -tno state established`;

# Reads and a write in flight, then the old primary hangs under them.
send_query($_, 'SELECT inet_server_port() FROM pg_sleep(2)') for @readers;
send_query($writer, 'INSERT INTO t SELECT 1 FROM pg_sleep(2) RETURNING inet_server_port()');
usleep(100_000);
@stopped = node_processes($old);
cmp_ok(scalar @stopped, '>', 3, 'found the postmaster and its children');
$offset = $pw->log_position;
signal_all('STOP', @stopped);
my $stop_time = time();
# Before the probes tell: its request goes to the hung node (a pooled server,
# or a login that gets no answer).
send_query($late, 'SELECT inet_server_port()');
# A client whose startup parameters no pooled server has: its login needs a
# server login on the hung node.
my $fresh = $pw->raw_connect;
print $fresh startup_packet(user => os_user(), database => 'postgres', application_name => 'fresh');

ok($pw->wait_for_log(qr/backend old: up -> down/, $offset), 'the hung primary is marked down');
$down_time = time();
note sprintf('marked down %.2f s after SIGSTOP', $down_time - $stop_time);

# The write's outcome is unknown: it gets 08006 without waiting for the node.
my ($err, $port, $status) = answer($writer, time_bound(5));
is($err && $err->{C}, '08006', 'the write in flight gets 08006') or diag explain [ $err, $status ];
like($err && $err->{M}, qr/old.*unreachable.*outcome .* unknown/,
	'saying the backend is unreachable and the outcome unknown');
cmp_ok(time() - $down_time, '<', time_bound(3), 'soon after the down verdict');

# The reads wait for a new primary, then run there.
$new->promote;
for my $i (1 .. 3)
{
	($err, $port, $status) = answer($readers[ $i - 1 ], time_bound(15));
	is($port, $new->port, "read $i in flight is answered by the new primary")
	  or diag explain [ $err, $status ];
}
($err, $port, $status) = answer($late, time_bound(15));
is($port, $new->port, 'the read sent while the primary hung is answered by the new primary')
  or diag explain [ $err, $status ];
($err, undef, $status) = answer($fresh, time_bound(15));
is($status, 'I', 'a login begun while the primary hung completes on the new primary')
  or diag explain [ $err, $status ];
send_query($fresh, 'SELECT inet_server_port()');
(undef, $port) = answer($fresh, time_bound(5));
is($port, $new->port, 'and its session is there');
cmp_ok(time() - $down_time, '<', time_bound(10),
	'the reads were answered well before the hung node came back');

send_query($idle, 'INSERT INTO t VALUES (2) RETURNING inet_server_port()');
(undef, $port) = answer($idle, time_bound(10));
is($port, $new->port, 'the idle session writes to the new primary');

signal_all('CONT', @stopped);
@stopped = ();
close $_ for (@ro, @readers, $writer, $idle, $late, $fresh);
$pw->stop;
done_testing();
