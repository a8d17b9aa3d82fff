# Letting an idle backend sleep: pgwing closes server connections idle for
# server_idle_timeout, and once the backend has had no clients that long,
# its probe connection too (probe_sleeping = off), so the database could stop.
# A client that stayed connected gets a server again when it speaks.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;
use Time::HiRes qw(time usleep);

my $node    = new_node('pg1');
my $datadir = $node->data_dir;
my $pglog   = $node->logfile;
my $script  = "$PostgreSQL::Test::Utils::tmp_check/072_wake.sh";
open my $fh, '>', $script or die "write $script: $!";
print $fh "#!/bin/sh\nexec pg_ctl -D '$datadir' -l '$pglog' -w start\n";
close $fh;
chmod 0755, $script;

my $interval_s = 0.3;
my $pw = PgWing::Test->new(
	backends => [ [ pg1 => $node, wake => "exec:\"$script\"" ] ],
	settings => {
		health_interval     => '300ms',
		server_idle_timeout => '1s',
	});
$pw->start;

# pgwing's connections to the database (its servers and its probe), as the
# database sees them.
sub pgwing_connections { return node_connections($node); }

sub wait_for_no_connections
{
	my $deadline = time() + time_bound(10);
	usleep(100_000) while pgwing_connections() ne '0' && time() < $deadline;
	return pgwing_connections() eq '0';
}

# 0 now, and still 0 at every look over 3 health intervals.
sub stays_without_connections
{
	my $until = time() + 3 * $interval_s;
	while (time() < $until)
	{
		return 0 if pgwing_connections() ne '0';
		usleep(50_000);
	}
	return 1;
}

is($pw->safe_psql('SELECT 1'), '1', 'a client is served');
cmp_ok(pgwing_connections(), '>=', 1, 'the probe is connected');

# A client that stays, idle: its server goes after server_idle_timeout.
my $idle = $pw->background_psql;
is($idle->query_safe('SELECT 2'), '2', 'an idle client had a server');
ok(wait_for_no_connections(), 'its server and then the probe are closed');
ok($pw->wait_for_log(qr/backend pg1: up -> asleep: no clients for 1000 ms/),
	'the backend is asleep');
ok(stays_without_connections(), 'no connection from pgwing for 3 x health_interval');
is($idle->query_safe('SELECT 3'), '3', 'the idle client gets a server again when it speaks');
$idle->quit;

# A client gone: same.
ok(wait_for_no_connections(), 'after the client left: no connection');
ok(stays_without_connections(), 'and none for 3 x health_interval');
like($pw->safe_psql('SHOW BACKENDS', dbname => 'pgwing', user => 'admin'),
	qr/^pg1\|.*\|asleep\|/m, 'SHOW BACKENDS says asleep');
is($pw->safe_psql('SELECT 4'), '4', 'a new client wakes it');

# probe_sleeping = on: an asleep backend is probed (and so seen up) again.
ok(wait_for_no_connections(), 'asleep again once unused');
$pw->set(probe_sleeping => 'on');
$pw->write_config;
my $pos = $pw->log_position;
$pw->signal('HUP');
ok($pw->wait_for_log(qr/backend pg1: asleep -> up/, $pos), 'probe_sleeping on: probed up again');

$pw->stop;
done_testing();
