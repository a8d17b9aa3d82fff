# A replica further behind than max_replica_lag takes no new read clients, and
# takes them again once it has caught up. Replay is paused on the same-region
# replica while ~50 MB are written on the primary.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;
use Time::HiRes qw(usleep time);

my ($primary, %replica);
($primary, @replica{qw(near far)}) =
  primary_with_replicas('primary', [qw(near far)], sql => 'CREATE TABLE t (v int)');

my $pw = start_pgwing_with(
	backends => [
		[ primary => $primary,       region => 'ams' ],
		[ near    => $replica{near}, region => 'ams' ],
		[ far     => $replica{far},  region => 'ord' ],
	],
	settings => {
		region          => 'ams',
		health_timeout  => '1s',
		max_replica_lag => '1s',
	},
	up => [ near => undef ]);

sub read_port
{
	return $pw->safe_psql('SELECT inet_server_port()', target => 'ro');
}

# Poll new read clients until one lands on $want (seconds waited) or time runs out (undef).
sub wait_for_reader_on
{
	my ($want, $timeout) = @_;
	my $start = time();
	while (time() - $start < $timeout)
	{
		return time() - $start if read_port() eq $want->port;
		usleep(100_000);
	}
	return undef;
}

is(read_port(), $replica{near}->port, 'caught up: reads on the same-region replica');

# Pause replay, then write ~50 MB: the near replica receives but does not replay.
$replica{near}->safe_psql('postgres', 'SELECT pg_wal_replay_pause()');
$replica{near}->poll_query_until('postgres',
	"SELECT pg_get_wal_replay_pause_state() = 'paused'")
  or die 'replay did not pause';
$primary->safe_psql('postgres',
	"CREATE TABLE big AS SELECT g, repeat('x', 500) AS pad FROM generate_series(1, 100000) g");
$primary->wait_for_catchup($replica{far}, 'replay');

# Its lag (the age of its last replayed transaction) passes 1 s: readers move to the far replica.
ok(defined wait_for_reader_on($replica{far}, time_bound(15)), 'a lagging replica gets no new read clients');
for my $i (1 .. 3)
{
	is(read_port(), $replica{far}->port, "while lagging, reads stay on the other replica ($i)");
}
isnt(
	$replica{near}->safe_psql('postgres',
		"SELECT count(*) FROM pg_class WHERE relname = 'big'"),
	'1',
	'(the near replica really has not replayed the write)');

# Resume: once caught up it is the first choice again.
$replica{near}->safe_psql('postgres', 'SELECT pg_wal_replay_resume()');
$primary->wait_for_catchup($replica{near}, 'replay');
ok(defined wait_for_reader_on($replica{near}, time_bound(15)), 'caught up again: reads return to it');
is( $pw->safe_psql("SELECT count(*) FROM big", target => 'ro'),
	'100000', 'and it serves the rows written meanwhile');

$pw->stop;
done_testing();
