# Backends from Fly-shaped private DNS (discover = fly:<app>): a name server on
# loopback serves the TXT machine lists vms.<app>.internal and
# all.vms.<app>.internal and an A record per machine, and each Postgres listens
# on its own 127.0.0.x address and the same port, as Fly machines do. Backends
# appear, change region and disappear as the records change, a psql session
# stays connected through all of it, and a DNS outage keeps the last set.
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;
use Time::HiRes qw(time usleep);

# The primary keeps the default 127.0.0.1 (streaming needs it); the replica
# gets 127.0.0.2, on the primary's port.
my $primary = new_node('m1', allows_streaming => 1);
my $port    = $primary->port;
# Clients of the other machine's address come from it too.
$primary->append_conf('pg_hba.conf', "host all all 127.0.0.0/8 trust\n");
$primary->reload;
$primary->backup('base');
my $replica = PostgreSQL::Test::Cluster->new('m2', own_host => 1, port => $port);
$replica->init_from_backup($primary, 'base', has_streaming => 1);
$replica->start;
isnt($primary->host, $replica->host, 'two machines, one port: ' . $primary->host . ' and '
	  . $replica->host);

# The name server, answering from a file the test rewrites.
my $dns = PgWing::Test::FakeDns->new('100');

sub set_records
{
	my (%m) = @_;    # machine id => [ address, region, started? ]
	my @ids = sort keys %m;
	my $all = join ',', map { "$_ $m{$_}[1]" } @ids;
	my $started = join ',', map { "$_ $m{$_}[1]" } grep { $m{$_}[2] } @ids;
	my $text = '';
	$text .= "vms.pgapp.internal. 1 IN TXT \"$started\"\n" if $started ne '';
	$text .= "all.vms.pgapp.internal. 1 IN TXT \"$all\"\n";
	$text .= "$_.vm.pgapp.internal. 1 IN A $m{$_}[0]\n" for @ids;
	return $dns->records($text);
}

set_records(m1 => [ $primary->host, 'ams', 1 ]);

my $pw = PgWing::Test->new(
	backends     => [],
	extra_config => "discover = fly:pgapp port=$port wake=none\n",
	settings     => {
		region             => 'ams',
		dns_nameserver     => "127.0.0.1:" . $dns->port,
		discovery_interval => '300ms',
		health_interval    => '200ms',
		health_timeout     => '1s',
		hold_timeout       => '10s',
	});
# extra_config goes after [backends], so the discover= line lands in it.
$pw->start;
ok($pw->wait_for_log(qr/backend m1: unknown -> up \(primary/), 'm1 discovered and probed up');

# Poll until check->() is true; how long it took, or undef at the deadline.
my $b = $pw->backends;
is_deeply([ sort keys %$b ], ['m1'], 'SHOW BACKENDS: the one started machine');
is_deeply([ @{ $b->{m1} }{qw(host port region role state)} ],
	[ $primary->host, $port, 'ams', 'primary', 'up' ], 'm1: its address, port and region');

# A session that stays connected through every change below.
my $session = $pw->background_psql(target => 'ro');
is($session->query_safe('SELECT inet_server_addr()'), $primary->host,
	'a reader on the primary while there is no replica');

# A second machine starts: it appears, is probed, and takes the readers.
my $t0   = set_records(m1 => [ $primary->host, 'ams', 1 ], m2 => [ $replica->host, 'fra', 1 ]);
my $took = wait_until(
	sub {
		$pw->safe_psql('SELECT inet_server_addr()', target => 'ro') eq $replica->host;
	},
	20) ? time() - $t0 : undef;
ok(defined $took, 'a new machine takes readers');
diag(sprintf 'record change to routing by it: %.2f s', $took // -1);
$b = $pw->backends;
is_deeply([ @{ $b->{m2} }{qw(host port region role state)} ],
	[ $replica->host, $port, 'fra', 'replica', 'up' ], 'SHOW BACKENDS: m2, a replica in fra');
is($session->query_safe('SELECT 1'), '1', 'the session is still connected');

# It moves region: the same backend, with its state kept.
set_records(m1 => [ $primary->host, 'ams', 1 ], m2 => [ $replica->host, 'ams', 1 ]);
ok(wait_until(sub { ($pw->backends->{m2}{region} // '') eq 'ams' }), 'm2 now in ams');
is($pw->backends->{m2}{state}, 'up', 'and still up: not re-added');
is($session->query_safe('SELECT 1'), '1', 'the session is still connected');

# A DNS outage: the last known set stays, and routing with it.
my $offset = $pw->log_position;
$dns->stop;
usleep(PgWing::Test::_timeout(2_000_000));
ok($pw->wait_for_log(qr/discover fly:pgapp: .*keeping the 2 backends/, $offset),
	'the outage is logged');
my @warnings = $pw->log_content =~ /discover fly:pgapp: .*keeping/g;
is(scalar @warnings, 1, 'once, not per attempt');
is_deeply([ sort keys %{ $pw->backends } ], [qw(m1 m2)], 'both backends kept through the outage');
is($pw->safe_psql('SELECT inet_server_addr()', target => 'ro'),
	$replica->host, 'reads still go to the replica');
is($pw->safe_psql('SELECT inet_server_addr()'), $primary->host, 'writes to the primary');
is($session->query_safe('SELECT 1'), '1', 'the session is still connected');

# DNS is back without m2: it goes, readers fall back to the primary, and the
# session that was reading from m2 carries on there.
is($session->query_safe('SELECT inet_server_addr()'), $replica->host,
	'the session reads from m2 before it goes');
$offset = $pw->log_position;
set_records(m1 => [ $primary->host, 'ams', 1 ]);
$dns->start;
ok($pw->wait_for_log(qr/discover fly:pgapp: lookups work again/, $offset),
	'recovery is logged');
ok(wait_until(sub { !exists $pw->backends->{m2} }), 'm2 is gone from SHOW BACKENDS');
is($session->query_safe('SELECT inet_server_addr()'), $primary->host,
	'the session moved to the primary, not dropped');
is($pw->safe_psql('SELECT inet_server_addr()', target => 'ro'),
	$primary->host, 'new readers on the primary');

# A stopped machine (in all.vms but not vms) is no backend without a way to wake
# it (wake=none: by default the Machines API would be one).
set_records(m1 => [ $primary->host, 'ams', 1 ], m2 => [ $replica->host, 'fra', 0 ]);
usleep(PgWing::Test::_timeout(1_000_000));
ok(!exists $pw->backends->{m2}, 'a stopped machine with wake=none is not listed');

# A reload keeps the discovered backends (and their state); with a long
# interval from now on, only the re-resolve a failure triggers can find m2's
# new address when the machine comes back elsewhere.
set_records(m1 => [ $primary->host, 'ams', 1 ], m2 => [ $replica->host, 'fra', 1 ]);
ok(wait_until(sub { ($pw->backends->{m2}{state} // '') eq 'up' }), 'm2 started again');
$offset = $pw->log_position;
$pw->{settings}{discovery_interval} = '1h';
$pw->write_config;
$pw->signal('HUP');
ok($pw->wait_for_log(qr/configuration reloaded/, $offset), 'reloaded with discovery_interval 1h');
usleep(PgWing::Test::_timeout(500_000));
ok(!$pw->log_contains(qr/backend m[12]: \w+ -> /, $offset),
	'the discovered backends kept their state through the reload');
is_deeply([ sort keys %{ $pw->backends } ], [qw(m1 m2)], 'and are still listed');

# The record changes first (nothing looks at it for an hour), then the
# machine restarts at that address.
my $new_host = '127.0.0.3';
set_records(m1 => [ $primary->host, 'ams', 1 ], m2 => [ $new_host, 'fra', 1 ]);
usleep(PgWing::Test::_timeout(500_000));
is($pw->backends->{m2}{host}, $replica->host, 'a record change alone waits for the next round');
$t0 = time();
$replica->stop;
$replica->append_conf('postgresql.conf', "listen_addresses = '$new_host'");
$replica->start;
$took = wait_until(
	sub {
		my $m2 = $pw->backends->{m2} // {};
		($m2->{host} // '') eq $new_host && ($m2->{state} // '') eq 'up';
	},
	20) ? time() - $t0 : undef;
ok(defined $took, 'm2 found at its new address once its old one failed, well before the interval');
diag(sprintf 'machine restart at a new address to routing by it: %.2f s', $took // -1);
is($pw->safe_psql('SELECT inet_server_addr()', target => 'ro'), $new_host,
	'readers reach m2 at its new address');
is($session->query_safe('SELECT 1'), '1', 'the session is still connected');

# With a way to wake it (a reload adds wake= to the discover line), a stopped
# machine is a backend again: asleep, not down.
# The record first: with discovery_interval = 1h only the lookup that m2's
# going down triggers reads it, and that must find the machine stopped.
set_records(m1 => [ $primary->host, 'ams', 1 ], m2 => [ $new_host, 'fra', 0 ]);
$replica->stop;
ok(wait_until(sub { !exists $pw->backends->{m2} }), 'm2 stopped: gone with wake=none');
$pw->{extra_config} = "discover = fly:pgapp port=$port wake=exec:true\n";
$pw->write_config;
$pw->signal('HUP');
ok(wait_until(sub { ($pw->backends->{m2}{state} // '') eq 'asleep' }),
	'with wake=, the stopped machine is listed asleep');
is($session->query_safe('SELECT inet_server_addr()'), $primary->host,
	'the session reads from the primary meanwhile');

$session->quit;
ok($pw->alive, 'pgwing still running');
$pw->stop;
$dns->stop;
done_testing();
