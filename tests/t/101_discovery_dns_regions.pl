# Backends from plain DNS names per region (discover = dns:<name>
# regions=...): each address of <region>.<name> is a backend in that region,
# IPv6 (AAAA on ::1) as well as IPv4. Addresses come and go and move between
# regions as the records change, a reader's session stays connected, and an
# outage of the name server keeps the last set. A dns_nameserver that is no
# address stops pgwing at start.
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;
use Time::HiRes qw(time usleep);

my $primary = new_node('primary', allows_streaming => 1);
my $port    = $primary->port;
$primary->append_conf('pg_hba.conf',
	"host all all 127.0.0.0/8 trust\nhost all all ::1/128 trust\n");
$primary->reload;
$primary->backup('base');
# The replica answers on 127.0.0.2 and on ::1, the primary's port.
my $replica = PostgreSQL::Test::Cluster->new('replica', own_host => 1, port => $port);
$replica->init_from_backup($primary, 'base', has_streaming => 1);
$replica->append_conf('postgresql.conf', "listen_addresses = '" . $replica->host . ",::1'");
$replica->start;

my $dns = PgWing::Test::FakeDns->new('101');

# region => [ addresses ]: <region>.db.test gets an A or AAAA record for each.
sub set_records
{
	my (%r) = @_;
	my $text = '';
	for my $region (sort keys %r)
	{
		for my $addr (@{ $r{$region} })
		{
			my $type = $addr =~ /:/ ? 'AAAA' : 'A';
			$text .= "$region.db.test. 1 IN $type $addr\n";
		}
	}
	return $dns->records($text);
}


# A resolver that is no address is a start-up error, not a pgwing without DNS.
my $bad = PgWing::Test->new(
	name         => 'bad',
	backends     => [],
	extra_config => "discover = dns:db.test port=$port\n",
	settings     => { dns_nameserver => 'not an address' });
is($bad->start(fail_ok => 1), 0, 'a dns_nameserver that is no address: pgwing does not start');
ok($bad->log_contains(qr/dns_nameserver not an address: not an address\[:port\]/),
	'and says why');

set_records(ams => ['127.0.0.1'], fra => ['::1']);
my $pw = PgWing::Test->new(
	backends     => [],
	extra_config => "discover = dns:db.test regions=ams,fra port=$port\n",
	settings     => {
		region             => 'fra',
		dns_nameserver     => "127.0.0.1:" . $dns->port,
		discovery_interval => '300ms',
		health_interval    => '200ms',
		health_timeout     => '1s',
		hold_timeout       => '10s',
	});
$pw->start;
ok( wait_until(
		sub {
			my $b = $pw->backends;
			($b->{'db.test/127.0.0.1'}{state} // '') eq 'up'
			  && ($b->{'db.test/::1'}{state} // '') eq 'up';
		}),
	'both addresses discovered and probed up');
my $b = $pw->backends;
is_deeply([ sort keys %$b ], [ 'db.test/127.0.0.1', 'db.test/::1' ], 'SHOW BACKENDS: two');
is_deeply([ @{ $b->{'db.test/::1'} }{qw(host port region role)} ],
	[ '::1', $port, 'fra', 'replica' ], 'the AAAA one: the replica in fra, over IPv6');
is_deeply([ @{ $b->{'db.test/127.0.0.1'} }{qw(host region role)} ],
	[ '127.0.0.1', 'ams', 'primary' ], 'the A one: the primary in ams');

my $session = $pw->background_psql(target => 'ro');
is($session->query_safe('SELECT inet_server_addr()'), '::1', 'a reader on the near replica');

# The fra record changes to the replica's IPv4 address: one backend goes, one comes.
set_records(ams => ['127.0.0.1'], fra => [ $replica->host ]);
ok( wait_until(
		sub {
			my $b = $pw->backends;
			!$b->{'db.test/::1'}
			  && ($b->{ 'db.test/' . $replica->host }{state} // '') eq 'up';
		}),
	'the replica is now known by its IPv4 address only');
is($session->query_safe('SELECT inet_server_addr()'),
	$replica->host, 'the session moved with it, not dropped');

# It moves to ams, where fra has no name any more (NXDOMAIN): region changes, state stays.
my $offset = $pw->log_position;
set_records(ams => [ '127.0.0.1', $replica->host ]);
ok(wait_until(sub { ($pw->backends->{ 'db.test/' . $replica->host }{region} // '') eq 'ams' }),
	'the replica moved to ams');
ok(!$pw->log_contains(qr/backend db\.test\/\S+: \w+ -> /, $offset),
	'no backend changed state for it');
ok(!$pw->log_contains(qr/keeping/, $offset), 'a region without a name is no failure');

# Outage: the name server goes away; the set stays.
$offset = $pw->log_position;
$dns->stop;
ok($pw->wait_for_log(qr/discover dns:db\.test: .*keeping the 2 backends/, $offset),
	'the outage is logged');
usleep(PgWing::Test::_timeout(1_500_000));
my @warnings = ($pw->log_content =~ /discover dns:db\.test: .*keeping/g);
is(scalar @warnings, 1, 'once');
is_deeply([ sort keys %{ $pw->backends } ],
	[ 'db.test/127.0.0.1', 'db.test/' . $replica->host ], 'both backends kept');
is($session->query_safe('SELECT 1'), '1', 'the session is still connected');
is($pw->safe_psql('SELECT inet_server_addr()'), '127.0.0.1', 'writes still reach the primary');

$session->quit;
ok($pw->alive, 'pgwing still running');
$pw->stop;
done_testing();
