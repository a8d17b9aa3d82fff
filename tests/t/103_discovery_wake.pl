# A stopped Fly machine (in all.vms.<app>.internal, not in vms) of a
# discover = fly: line with wake= is a backend that is asleep, not down, and
# the first client that needs it wakes it with the line's wake command.
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;

my $node    = new_node('m1');
my $port    = $node->port;
my $datadir = $node->data_dir;
my $pglog   = $node->logfile;
my $wakes   = "$PostgreSQL::Test::Utils::tmp_check/103_wakes.txt";
unlink $wakes;
my $script = "$PostgreSQL::Test::Utils::tmp_check/103_wake.sh";
open my $fh, '>', $script or die "write $script: $!";
print $fh "#!/bin/sh\necho woke >> '$wakes'\nexec pg_ctl -D '$datadir' -l '$pglog' -w start\n";
close $fh;
chmod 0755, $script;
$node->stop;

# The machine is listed, stopped.
my $dns = PgWing::Test::FakeDns->new('103',
	"all.vms.pgapp.internal. 1 IN TXT \"m1 ams\"\nm1.vm.pgapp.internal. 1 IN A 127.0.0.1\n");

my $pw = PgWing::Test->new(
	backends     => [],
	extra_config => "discover = fly:pgapp port=$port wake=exec:\"$script\"\n",
	settings     => {
		dns_nameserver     => "127.0.0.1:" . $dns->port,
		discovery_interval => '300ms',
		health_interval    => '200ms',
		health_fail_count  => 1,
		wake_timeout       => '30s',
	});
$pw->start;
ok($pw->wait_for_log(qr/backend m1: unknown -> asleep/), 'the stopped machine is asleep');
like($pw->safe_psql('SHOW BACKENDS', dbname => 'pgwing', user => 'admin'),
	qr/^m1\|127\.0\.0\.1\|$port\|.*\|asleep\|/m, 'SHOW BACKENDS says so');

is($pw->safe_psql('SELECT 1', timeout => 60), '1', 'a client wakes it and gets its answer');
ok(-e $wakes, 'through the discover line\'s wake command');
ok($pw->log_contains(qr/backend m1: woke up in \d+ ms/), 'the wake is logged');

# A reload that changes only the line's wake applies it to the machine.
my $wakes2 = "$wakes.2";
unlink $wakes2;
my $script2 = "$script.2";
open $fh, '>', $script2 or die "write $script2: $!";
print $fh "#!/bin/sh\necho woke >> '$wakes2'\nexec pg_ctl -D '$datadir' -l '$pglog' -w start\n";
close $fh;
chmod 0755, $script2;
my $offset = $pw->log_position;
$pw->{extra_config} = "discover = fly:pgapp port=$port wake=exec:\"$script2\"\n";
$pw->write_config;
$pw->signal('HUP');
ok($pw->wait_for_log(qr/configuration reloaded/, $offset), 'reloaded with another wake');
# Then the machine stops (as Fly's autostop would) and a client needs it again.
# (pg_ctl itself: the node object does not know the wake started it.)
$pw->safe_psql('SELECT 1');
system('pg_ctl', '-D', $datadir, '-m', 'fast', '-w', 'stop') == 0 or die 'pg_ctl stop failed';
ok($pw->wait_for_log(qr/backend m1: \w+ -> asleep/, $offset), 'asleep again');
is($pw->safe_psql('SELECT 1', timeout => 60), '1', 'the next client wakes it');
ok(-e $wakes2, 'with the new wake command');

$pw->stop;
system('pg_ctl', '-D', $datadir, '-m', 'fast', '-w', 'stop') == 0 or die 'pg_ctl stop failed';
done_testing();
