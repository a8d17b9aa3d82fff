# Routing by role and region: a primary and two streaming replicas, one in
# pgwing's region. Writes (rw port) land on the primary, reads (ro port) on the
# same-region replica; when it stops, new readers go to the other replica, and
# with both stopped, to the primary. No backend is declared primary: the roles
# come from the probes.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;

my ($primary, %replica);
($primary, @replica{qw(near far)}) =
  primary_with_replicas('primary', [qw(near far)], sql => 'CREATE TABLE t (v int)');

# The primary is listed last and in the far region, so nothing but its
# probed role can make it the write target. The far replica is named by host
# name, so its probe goes through the resolver.
my $pw = start_pgwing_with(
	backends => [
		[ far     => 'host=localhost port=' . $replica{far}->port, region => 'ord' ],
		[ near    => $replica{near}, region => 'ams' ],
		[ primary => $primary,       region => 'ord' ],
	],
	settings => {
		region         => 'ams',
		health_timeout => '1s',
		hold_timeout   => '10s',
	},
	up => [ near => 'replica', primary => 'primary' ]);

# Which server answered, as "in_recovery|port".
sub served_by
{
	my ($target, $sql) = @_;
	$sql //= 'SELECT pg_is_in_recovery(), inet_server_port()';
	return $pw->safe_psql($sql, target => $target);
}

is(served_by('rw'), 'f|' . $primary->port, 'rw port: the primary');
is( served_by('rw', 'INSERT INTO t VALUES (1) RETURNING inet_server_port()'),
	$primary->port, 'a write through the rw port succeeds on the primary');
for my $i (1 .. 3)
{
	is(served_by('ro'), 't|' . $replica{near}->port, "ro port: the same-region replica ($i)");
}

# A write on the ro port gets the replica's own error.
my ($rc, $out, $err) = $pw->psql('INSERT INTO t VALUES (2)', target => 'ro');
isnt($rc, 0, 'a write through the ro port fails');
like($err, qr/read-only transaction/, 'with the replica\'s 25006 error');

# The near replica stops: once it is down, readers go to the far one.
$replica{near}->stop('fast');
ok($pw->wait_for_backend('near', state => 'down'), 'stopped replica marked down');
for my $i (1 .. 3)
{
	is(served_by('ro'), 't|' . $replica{far}->port, "ro port: the other replica ($i)");
}
is(served_by('rw'), 'f|' . $primary->port, 'rw port unaffected');

# Both replicas down: reads fall back to the primary (ro_fallback = primary).
$replica{far}->stop('fast');
ok($pw->wait_for_backend('far', state => 'down'), 'second replica marked down');
is(served_by('ro'), 'f|' . $primary->port, 'ro port: the primary when no replica is up');

# The near replica comes back: new readers return to it.
$replica{near}->start;
ok($pw->wait_for_backend('near', state => 'up'), 'restarted replica marked up');
is(served_by('ro'), 't|' . $replica{near}->port, 'ro port: back on the same-region replica');

# With ro_fallback = error, no replica means an error, not the primary.
$replica{near}->stop('fast');
ok($pw->wait_for_backend('near', state => 'down'), 'near replica down again');
$pw->set(ro_fallback => 'error', hold_timeout => '1s');
$pw->restart;
($rc, $out, $err) = $pw->psql('SELECT 1', target => 'ro');
isnt($rc, 0, 'ro_fallback = error: reads fail without a replica');
like($err, qr/no server (available )?for reads/, 'with a clear message');
is(served_by('rw'), 'f|' . $primary->port, 'writes still reach the primary');

$pw->stop;
done_testing();
