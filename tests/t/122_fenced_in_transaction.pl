# A transaction on a primary that gets fenced ends at once: a replica is
# promoted while the old primary keeps running, and once SHOW BACKENDS shows
# the old one fenced, a session that was in BEGIN on it gets 08006 at its next
# statement and its COMMIT never succeeds; one with a statement in flight in
# its transaction gets 08006 without waiting for it; nothing either wrote is
# left on the old primary. An idle session is served by the new primary.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;
use Time::HiRes qw(usleep time);

# Writes to a session pgwing has ended must fail, not kill the test.
$SIG{PIPE} = 'IGNORE';

my ($old, $new) = primary_with_replicas('old', ['new'], sql => 'CREATE TABLE t (v int, tag text)');

my $pw = start_pgwing_with(
	backends => [ [ old => $old ], [ new => $new ] ],
	settings => {
		health_timeout => '1s',
		hold_timeout   => '10s',
		stats_users    => os_user(),
	},
	up => [ old => 'primary', new => 'replica' ]);

# Messages up to ReadyForQuery: (error fields or undef, first value, status);
# status 'eof' when the connection ended first.
sub query
{
	my ($sock, $sql) = @_;
	my ($err, $value);
	print $sock pg_message('Q', "$sql\0");
	while (1)
	{
		my ($t, $b) = read_message($sock, 30);
		return ($err, $value, $b) unless defined $t;
		$err = error_fields($b) if $t eq 'E';
		($value) = substr($b, 6, unpack('x2 N', $b)) if $t eq 'D' && !defined $value;
		return ($err, $value, $b) if $t eq 'Z';
	}
}

sub session
{
	my $s = $pw->raw_connect;
	ok(raw_login($s)->{ok}, "$_[0]: logged in");
	return $s;
}

# The role and state SHOW BACKENDS gives a backend.
sub backend_row
{
	my ($name) = @_;
	my $out = $pw->safe_psql('SHOW BACKENDS', dbname => 'pgwing');
	my ($row) = grep { /^\Q$name\E\|/ } split /\n/, $out;
	return (split /\|/, $row // '')[ 4, 5 ];
}

# In BEGIN on the old primary, with rows inserted.
my $in_tx = session('in transaction');
my ($err, $port, $status) = query($in_tx, 'BEGIN');
($err, $port) = query($in_tx, "INSERT INTO t VALUES (1, 'a') RETURNING inet_server_port()");
is($port, $old->port, 'the transaction runs on the old primary');
(undef, undef, $status) = query($in_tx, "INSERT INTO t SELECT g, 'a' FROM generate_series(2, 5) g");
is($status, 'T', 'the session is in a transaction');

# In BEGIN too, with a statement still running when the fence comes.
my $in_flight = session('statement in flight');
query($in_flight, 'BEGIN');
query($in_flight, "INSERT INTO t VALUES (10, 'b')");
print $in_flight pg_message('Q', "SELECT pg_sleep(60)\0");

# Idle, between transactions, on the old primary.
my $idle = session('idle');
(undef, $port) = query($idle, 'SELECT inet_server_port()');
is($port, $old->port, 'the idle session was on the old primary');

my $offset = $pw->log_position;
$new->promote;
my $deadline = time() + time_bound(15);
my ($role, $state) = ('', '');
while (time() < $deadline)
{
	($role, $state) = backend_row('old');
	last if $role eq 'fenced';
	usleep(50_000);
}
is($role, 'fenced', 'SHOW BACKENDS shows the old primary fenced');
my $fenced_at = time();

# The statement in flight did not run its course: the session ended with 08006.
my ($t, $b) = read_message($in_flight, 10);
my $flight_err = defined $t && $t eq 'E' ? error_fields($b) : undef;
is($flight_err && $flight_err->{C}, '08006', 'the statement in flight gets 08006')
  or diag explain [ $t, $b ];
like($flight_err && $flight_err->{M}, qr/old.*fenced/, 'naming the fenced backend');
cmp_ok(time() - $fenced_at, '<', time_bound(5), 'at once, not after its pg_sleep(60)');
# Going on in autocommit after that error would let its COMMIT succeed
# elsewhere with the first part of the transaction lost: the session ends.
is($flight_err && $flight_err->{S}, 'FATAL', 'the error ends the session');
(undef, $b) = read_message($in_flight, 5);
is($b, 'eof', 'and pgwing closes it, with no ReadyForQuery after the error');

($err, undef, $status) = query($in_tx, "INSERT INTO t VALUES (6, 'a')");
is($err && $err->{C}, '08006', 'the next statement of the open transaction gets 08006')
  or diag explain $err;
like($err && $err->{M}, qr/fenced.*transaction was rolled back/,
	'saying the transaction was rolled back because the backend was fenced');
($err, undef, $status) = query($in_tx, 'COMMIT');
isnt($status, 'I', 'its COMMIT does not succeed');
is($status, 'eof', 'the session is over');

(undef, $port) = query($idle, 'SELECT inet_server_port()');
is($port, $new->port, 'the idle session is served by the new primary');
(undef, $port) = query($idle, "INSERT INTO t VALUES (100, 'c') RETURNING inet_server_port()");
is($port, $new->port, 'and writes there');

# Postgres rolled the transactions back when pgwing closed their servers.
$deadline = time() + time_bound(10);
my $left;
while (time() < $deadline)
{
	$left = $old->safe_psql('postgres', "SELECT count(*) FROM t WHERE tag IN ('a', 'b')");
	last if $left eq '0';
	usleep(100_000);
}
is($left, '0', 'no row of either transaction is on the old primary');
is($new->safe_psql('postgres', "SELECT count(*) FROM t WHERE tag IN ('a', 'b')"),
	'0', 'nor on the new one');
ok($pw->log_contains(qr/ending what it has under way on backend old: it was fenced/, $offset),
	'the ending is logged');

close $_ for ($in_tx, $in_flight, $idle);
$pw->stop;
done_testing();
