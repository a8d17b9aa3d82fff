# A session moves to the new primary with what it set up: a SET search_path,
# a named prepared statement (protocol-level Parse) and a LISTEN survive a
# failover; a session with a temporary table gets a clear 08006 instead.
# With no new primary, held clients get 08006 at hold_timeout, not before,
# while the admin console keeps answering.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;
use Time::HiRes qw(usleep time);

my ($old, $new) = primary_with_replicas('old', ['new'],
	sql => 'CREATE SCHEMA app; CREATE TABLE app.items (id int); INSERT INTO app.items VALUES (1), (2), (3)');

my $pw = start_pgwing_with(
	name     => 'pw',
	backends => [ [ old => $old ], [ new => $new ] ],
	settings => {
		health_timeout => '1s',
		hold_timeout   => '20s',
	},
	up => [ old => 'primary', new => 'replica' ]);

# Read messages until ReadyForQuery; returns the list of [type, body].
sub until_ready
{
	my ($sock) = @_;
	my @msgs;
	while (1)
	{
		my ($t, $b) = read_message($sock, 30);
		die "connection ended: $b" unless defined $t;
		push @msgs, [ $t, $b ];
		return @msgs if $t eq 'Z';
	}
}

sub simple_query
{
	my ($sock, $sql) = @_;
	print $sock pg_message('Q', "$sql\0");
	return until_ready($sock);
}

sub first_value
{
	my ($type, $body) = @{ (grep { $_->[0] eq 'D' } @_)[0] // [ '', '' ] };
	return undef unless $type eq 'D';
	my ($n, $len) = unpack('n N', $body);
	return substr($body, 6, $len);
}

sub error_of
{
	my ($e) = grep { $_->[0] eq 'E' } @_;
	return $e ? error_fields($e->[1]) : undef;
}

# The session with state to carry.
my $s = $pw->raw_connect;
ok(raw_login($s)->{ok}, 'stateful session logged in');
simple_query($s, 'SET search_path = app, public');
simple_query($s, 'LISTEN moved');
print $s pg_message('P', "items_by_id\0SELECT count(*) FROM items WHERE id <= \$1\0" . pack('n N', 1, 23));
print $s pg_message('S', '');
my @parsed = until_ready($s);
ok((grep { $_->[0] eq '1' } @parsed), 'named statement parsed');

# A session with a temporary table.
my $t = $pw->raw_connect;
ok(raw_login($t)->{ok}, 'temp-table session logged in');
my @tt = simple_query($t, 'CREATE TEMP TABLE scratch (v int)');
ok(!error_of(@tt), 'temporary table created');

# A client welcomed without a server, with the old primary's parameters; the
# new primary reports another time zone.
my $l = $pw->raw_connect;
my $welcome = raw_login($l);
ok($welcome->{ok}, 'a third client logged in');
is( $old->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
		  . "AND application_name = ''"),
	'2', 'it holds no server: only the two sessions have one');
$new->append_conf('postgresql.conf', "timezone = 'Asia/Kathmandu'");
$new->reload;
isnt($welcome->{params}{TimeZone}, 'Asia/Kathmandu', 'its welcome has the old primary\'s time zone');

# Failover.
$old->stop('fast');
$new->promote;
ok($pw->wait_for_log(qr/backend new: replica -> primary/), 'replica promoted and seen as primary');

my @r = simple_query($l, 'SELECT inet_server_port()');
is(first_value(@r), $new->port, 'the welcomed client\'s first query runs on the new primary');
my %told = map { split /\0/, $_->[1] } grep { $_->[0] eq 'S' } @r;
is($told{TimeZone}, 'Asia/Kathmandu', 'it is told the new primary\'s time zone');
ok(!exists $told{server_version}, 'and not what did not change');

@r = simple_query($s, 'SHOW search_path');
is(first_value(@r), 'app, public', 'SET search_path survived the failover');
@r = simple_query($s, 'SELECT inet_server_port()');
is(first_value(@r), $new->port, 'the session now runs on the new primary');

print $s pg_message('B', "\0items_by_id\0" . pack('n n N a* n', 0, 1, 1, '2', 0));
print $s pg_message('E', "\0" . pack('N', 0));
print $s pg_message('S', '');
@r = until_ready($s);
ok(!error_of(@r), 'named prepared statement usable after the failover')
  or diag explain error_of(@r);
is(first_value(@r), '2', 'and it returns the right rows');

$pw->safe_psql(q{NOTIFY moved, 'after failover'});
@r = simple_query($s, 'SELECT 1');
my ($note) = grep { $_->[0] eq 'A' } @r;
my $got = $note;
if (!$got)
{
	my ($type, $body) = read_message($s, 5);
	$got = [ $type, $body ] if defined $type && $type eq 'A';
}
ok($got && $got->[1] =~ /moved\0after failover\0/, 'LISTEN survived: the notification arrived');

# It was told while idle (FATAL, then the connection closes): read what came.
print $t pg_message('Q', "SELECT count(*) FROM scratch\0");
my $err;
while (my ($type, $body) = read_message($t, 5))
{
	last unless defined $type;
	$err = error_fields($body) if $type eq 'E';
	last if $type eq 'Z';
}
is($err && $err->{C}, '08006', 'the temp-table session gets 08006');
like($err && $err->{M}, qr/temporary table/, 'and the message says why');

# No primary at all: held clients wait for hold_timeout, then get 08006.
# Long enough that the LISTENing session, which starts waiting when its
# server goes (before the backend is marked down), still waits when SHOW POOLS
# looks, on a loaded machine too.
$pw->set(hold_timeout => '6s');
$pw->write_config;
$pw->signal('HUP');
ok($pw->wait_for_log(qr/configuration reloaded/), 'short hold_timeout reloaded');
$new->stop('fast');
ok($pw->wait_for_log(qr/backend new: up -> down/), 'the only primary is down');
my $t0 = time();
my @cmd = ('psql', '-XAtq', '-d', $pw->connstr, '-c', 'SELECT 1');
my ($out, $errout) = ('', '');
my $h = IPC::Run::start(\@cmd, '>', \$out, '2>', \$errout);
usleep(500_000);
my ($rc, $console) = $pw->psql('SHOW POOLS', dbname => 'pgwing', user => 'admin');
is($rc, 0, 'admin console answers while clients are held');
# Two wait: the new psql client, and the LISTENing session, which wants a
# server even while idle so that notifications can reach it.
like($console, qr/\|rw\|\d+\|2\|failover\|/, 'SHOW POOLS shows the held clients and why');
$h->finish;
my $waited = time() - $t0;
like($errout, qr/no primary available after 6 s/, 'held client gets the 08006 message');
ok($waited >= 5.9 && $waited < time_bound(12), sprintf('at hold_timeout, not before (%.1f s)', $waited));

$pw->stop;
done_testing();
