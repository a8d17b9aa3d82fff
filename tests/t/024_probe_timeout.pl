# A backend that stops answering (frozen with SIGSTOP, as a hung host or a
# network partition would look) is marked down by probe timeouts, so readers
# go elsewhere; it comes back up once it answers again. A timeout is a
# failure, never "unknown = fine".
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;

my ($primary, $replica) = primary_with_replicas('primary', ['replica']);

my $pw = start_pgwing_with(
	backends => [ [ primary => $primary ], [ replica => $replica ] ],
	settings => {
		health_timeout    => '500ms',
		health_fail_count => 2,
	},
	up => [ replica => undef ]);
is($pw->safe_psql('SELECT inet_server_port()', target => 'ro'),
	$replica->port, 'reads on the replica');

# Freeze the postmaster and the probe's backend: connections hang, queries never answer.
my $probe_pid = $replica->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE application_name = 'pgwing-health'");
my @frozen = ($replica->{_pid}, split /\n/, $probe_pid);
my $offset = $pw->log_position;
kill 'STOP', @frozen;
my $down = $pw->wait_for_log(qr/backend replica: up -> down: probe timed out after 500 ms/,
	$offset, 10);
my (undef, $reader_port) = $pw->psql('SELECT inet_server_port()', target => 'ro', timeout => 10);
my $thawed = $pw->log_position;
kill 'CONT', @frozen;
ok($down, 'two probe timeouts in a row mark the frozen replica down');
is($reader_port, $primary->port, 'meanwhile readers fall back to the primary');
ok($pw->log_contains(qr/backend replica: probe failed \(1 of 2\): probe timed out/, $offset),
	'the first timeout alone does not');

ok($pw->wait_for_log(qr/backend replica: down -> up/, $thawed), 'up again once it answers');
is($pw->safe_psql('SELECT inet_server_port()', target => 'ro'),
	$replica->port, 'reads return to the replica');

$pw->stop;
done_testing();
