# A change on one backend makes pgwing probe them all at once (#20 item 3):
# when the primary's probe fails, a role or timeline changes, or a backend
# comes back from down, another node may have changed too (a promotion, an
# old primary restarted), and waiting for each one's health_interval leaves
# writes stranded, or landing on the wrong node, for that long.
#
# Here health_interval is long: right after both were probed, the replica is
# promoted (pgwing does not see it yet) and then the old primary dies. Its
# failed probe makes pgwing probe the others, so a write through pgwing goes
# to the new primary at once, not at the replica's next scheduled probe.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;
use Time::HiRes qw(time);

my $interval = time_bound(20);
my ($old, $new) = primary_with_replicas('old', ['new'], sql => 'CREATE TABLE w (v int)');
my $pw = start_pgwing_with(
	backends => [ [ old => $old ], [ new => $new ] ],
	settings => {
		health_interval   => "${interval}s",
		health_fail_count => 1,
		hold_timeout      => ($interval * 3) . 's',
	},
	up => [ old => 'primary', new => 'replica' ]);

$new->promote;
$old->stop('immediate');
my $start = time;
my ($rc, $out, $err) = $pw->psql('INSERT INTO w VALUES (1) RETURNING v');
my $waited = time - $start;
is($out, '1', 'the write went to the promoted node') or diag $err;
cmp_ok($waited, '<', $interval / 2,
	sprintf('it waited %.1f s, not for the next scheduled probe (every %d s)', $waited, $interval));
ok($pw->wait_for_backend('new', state => 'up', role => 'primary'),
	'SHOW BACKENDS: the promoted node is the primary');

$pw->stop;
$new->stop;
done_testing();
