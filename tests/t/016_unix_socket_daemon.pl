# The unix sockets (unix_socket_dir) serve both ports, and pgwing -d runs in
# the background with its pidfile and logfile, and stops on SIGTERM.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;
use Time::HiRes qw(sleep);

my $node = new_node('primary');
my $sockdir = PostgreSQL::Test::Utils::tempdir_short;

my $pw = PgWing::Test->new(backends => [ [ primary => $node ] ], auth_type => 'trust',
	settings => { unix_socket_dir => $sockdir });
$pw->start;
ok(-S "$sockdir/.s.PGSQL." . $pw->rw_port, 'rw socket file exists');
ok(-S "$sockdir/.s.PGSQL." . $pw->ro_port, 'ro socket file exists');
for my $port ($pw->rw_port, $pw->ro_port)
{
	my ($rc, $out, $err) = $pw->psql('SELECT 1',
		extra => "host=$sockdir port=$port");
	is($out, '1', "psql over the unix socket, port $port") or diag $err;
}
$pw->stop;
ok(!-e "$sockdir/.s.PGSQL." . $pw->rw_port, 'socket file removed at stop');

# Daemon mode.
my $d = PgWing::Test->new(name => 'daemon', backends => [ [ primary => $node ] ],
	auth_type => 'trust');
my $pidfile = $d->dir . '/pgwing.pid';
my $logfile = $d->dir . '/pgwing.log';
$d->set(pidfile => $pidfile, logfile => $logfile);
$d->write_config;
my ($rc, $out, $err) = run_pgwing('-d', $d->config_file);
is($rc, 0, 'pgwing -d returns 0 at once') or diag $err;
my $pid;
for (1 .. 100)
{
	last if -s $pidfile;
	sleep 0.1;
}
ok(-s $pidfile, 'pidfile written');
$pid = -s $pidfile ? slurp_file($pidfile) : 0;
chomp $pid;
like($pid, qr/^\d+$/, 'pidfile holds a pid');
ok($pid && kill(0, $pid), 'the daemon runs');
my $served = 0;
for (1 .. 50)
{
	last if ($served = ($d->psql('SELECT 1', timeout => 10) == 0));
	sleep 0.1;
}
ok($served, 'the daemon serves clients');
ok(-s $logfile, 'the daemon logs to logfile');
kill 'TERM', $pid if $pid;
my $gone = 0;
for (1 .. 100)
{
	last if ($gone = !kill(0, $pid));
	sleep 0.1;
}
ok($gone, 'the daemon exits on SIGTERM');
kill 'KILL', $pid if $pid && !$gone;
note slurp_file($logfile) if -f $logfile;

done_testing();
