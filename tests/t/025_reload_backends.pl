# Backends added and removed by a reload (SIGHUP): a new replica is probed and
# takes readers; a removed one stops being probed and gets no more clients;
# the primary keeps its state (no re-probing needed to keep serving writes).
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;
use Time::HiRes qw(usleep);

my ($primary, $replica) = primary_with_replicas('primary', ['replica']);

my $pw = start_pgwing_with(
	backends => [ [ primary => $primary ] ],
	settings => { health_timeout => '1s' },
	up       => [ primary => undef ]);
is($pw->safe_psql('SELECT inet_server_port()', target => 'ro'),
	$primary->port, 'no replica configured: reads on the primary');

sub probes_on
{
	my ($node) = @_;
	return $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgwing-health'");
}

# Add the replica.
my $offset = $pw->log_position;
$pw->set_backends([ [ primary => $primary ], [ replica => $replica ] ]);
$pw->write_config;
$pw->signal('HUP');
ok($pw->wait_for_backend('replica', state => 'up', role => 'replica'),
	'the added replica is probed up');
ok(!$pw->log_contains(qr/backend primary: .*->/, $offset),
	'the primary kept its state through the reload');
is($pw->safe_psql('SELECT inet_server_port()', target => 'ro'),
	$replica->port, 'reads go to the added replica');
is(probes_on($replica), '1', 'one probe connection on the replica');

# Remove it again: its probe connection goes away, readers return to the primary.
$pw->set_backends([ [ primary => $primary ] ]);
$pw->write_config;
$pw->signal('HUP');
my $tries = 0;
usleep(100_000) while probes_on($replica) ne '0' && ++$tries < 100;
is(probes_on($replica), '0', 'the removed replica is no longer probed');
is($pw->safe_psql('SELECT inet_server_port()', target => 'ro'),
	$primary->port, 'reads are back on the primary');
is($pw->safe_psql('SELECT inet_server_port()'), $primary->port, 'writes unaffected');
ok($pw->alive, 'pgwing still running');

$pw->stop;
done_testing();
