# A client that speaks while a backend is suspect (its probe failed, fewer
# than health_fail_count times so far) is not given a server there: it may be
# hung, and the request would hang with it (#20 item 2). A read goes to
# another replica at once; a write waits for the verdict, like a failover
# hold, and runs where it says: on the new primary after a promotion, with no
# error. Once a suspect replica answers again, it gets clients again.
# The stopped processes are always continued (END block).
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;

# near: the replica read-only clients prefer (same region as pgwing).
my ($old, $new, $near) =
  primary_with_replicas('old', [ 'new', 'near' ], sql => 'CREATE TABLE t (v int)');
my $pw = start_pgwing_with(
	backends => [
		[ old  => $old,  region => 'far' ],
		[ new  => $new,  region => 'far' ],
		[ near => $near, region => 'here' ] ],
	settings => {
		region            => 'here',
		# About 2 s between the first failed probe of a hung node and its down verdict.
		health_timeout    => '1s',
		health_fail_count => 3,
		hold_timeout      => '30s',
		# Longer than the test: only the verdict may end a login to a hung node.
		server_connect_timeout => '60s',
	},
	up => [ old => 'primary', new => 'replica', near => 'replica' ]);

my @stopped;
END { kill 'CONT', @stopped if @stopped; }

sub stop_node
{
	my ($node) = @_;
	@stopped = node_processes($node);
	kill 'STOP', @stopped;
}

sub continue_node
{
	kill 'CONT', @stopped;
	@stopped = ();
}

# A session logged in (welcomed without a server when its pool knows the
# welcome), and the answer to one query: (error fields or undef, first value).
sub session
{
	my ($target) = @_;
	my $s = $pw->raw_connect(target => $target);
	ok(raw_login($s, timeout => time_bound(30))->{ok}, "$target session logged in");
	return $s;
}

sub send_query
{
	my ($s, $sql) = @_;
	print $s pg_message('Q', "$sql\0");
}

sub answer
{
	my ($s) = @_;
	my ($err, $value);
	while (1)
	{
		my ($t, $b) = read_message($s, time_bound(30));
		return ({ M => "no answer: $b" }, undef) unless defined $t;
		$err //= error_fields($b) if $t eq 'E';
		($value) = substr($b, 6, unpack('x2 N', $b)) if $t eq 'D' && !defined $value;
		return ($err, $value) if $t eq 'Z';
	}
}

sub ask
{
	my ($s, $sql) = @_;
	send_query($s, $sql);
	return answer($s);
}

# Each target's pool has a server on its backend, given back when its client left.
for my $target ('ro', 'rw')
{
	my $s = session($target);
	my (undef, $port) = ask($s, 'SELECT inet_server_port()');
	is($port, ($target eq 'ro' ? $near : $old)->port, "$target: pooled a server");
	close $s;
}

# A hung replica: while it is suspect, a new read goes to the other one.
my $offset = $pw->log_position;
stop_node($near);
ok($pw->wait_for_log(qr/backend near: probe failed \(1 of 3\)/, $offset),
	'the hung replica is suspect');
my $s = session('ro');
my ($err, $port) = ask($s, 'SELECT inet_server_port()');
is($port, $new->port, 'a read while it is suspect is served by the other replica')
  or diag explain $err;
is($pw->backends->{near}{state}, 'up', 'before the verdict');
close $s;
$offset = $pw->log_position;
continue_node();
ok($pw->wait_for_log(qr/backend near: answers again/, $offset), 'the replica answers again');
$s = session('ro');
(undef, $port) = ask($s, 'SELECT inet_server_port()');
is($port, $near->port, 'and gets reads again');
close $s;

# A hung primary: a write while it is suspect waits for the verdict (down),
# then for the promotion, and runs on the new primary.
$offset = $pw->log_position;
stop_node($old);
ok($pw->wait_for_log(qr/backend old: probe failed \(1 of 3\)/, $offset),
	'the hung primary is suspect');
$s = session('rw');
send_query($s, 'INSERT INTO t VALUES (1) RETURNING inet_server_port()');
ok($pw->wait_for_backend('old', state => 'down'), 'the hung primary is marked down');
$new->promote;
($err, $port) = answer($s);
is($err, undef, 'the write sent while the primary was suspect got no error');
is($port, $new->port, 'it ran on the new primary');
is($new->safe_psql('postgres', 'SELECT count(*) FROM t'), '1', 'once');

continue_node();
close $s;
$pw->stop;
$new->stop;
$old->stop('immediate');
done_testing();
