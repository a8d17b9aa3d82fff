# rw_split with a fault in the middle: the replica serving a session's reads
# is stopped (immediate) while the session is idle and then mid-read; the
# session's next reads run on the primary, with no error, and its writes go on.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;

my ($primary, $replica) =
  primary_with_replicas('primary', ['replica'], sql => 'CREATE TABLE t (id int PRIMARY KEY)');
my $pw = start_pgwing_with(
	backends => [ [ primary => $primary ], [ replica => $replica ] ],
	settings => { rw_split => 'on', health_timeout => '1s' },
	up       => [ primary => 'primary', replica => 'replica' ]);

my $bg = $pw->background_psql();
is($bg->query_safe('SELECT inet_server_port()'), $replica->port, 'reads on the replica');
$bg->query_safe('INSERT INTO t VALUES (1)');

$replica->stop('immediate');
is($bg->query_safe('SELECT count(*), inet_server_port() FROM t'), '1|' . $primary->port,
	'the replica stopped while the session was idle: its next read runs on the primary');
is($bg->query_safe('INSERT INTO t VALUES (2) RETURNING id'), '2', 'and its writes go on');
is($bg->query_safe('SELECT count(*) FROM t'), '2', 'and it reads them');

$replica->start;
ok( wait_until(sub { $bg->query_safe('SELECT inet_server_port()') eq $replica->port },
		time_bound(20)),
	'once the replica is back and caught up, reads return to it');
$bg->quit;
$pw->stop;
done_testing();
