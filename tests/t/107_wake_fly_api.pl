# Scale to zero through the Fly Machines API (wake=fly-api:<app>/<machine>):
# pgwing POSTs .../start, then GETs .../wait?state=started (asking again on
# 408) and lets health take over. The API is tests/tools/fake_fly_api.pl,
# which starts the stopped Postgres on start and answers wait.
#
# - 20 concurrent clients: one start, all get rows; the token goes in the
#   Authorization header and never into pgwing's log.
# - A 429 is retried and the wake still succeeds.
# - A refused token (401): logged once, the clients get 08006 saying why at
#   wake_timeout; a token that begins with "FlyV1 " is sent as given.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;
use Time::HiRes qw(time);

# Long, as Fly's tokens are.
my $token = 'fly-secret-' . ('x' x 2000);

my $node    = new_node('m1');
my $port    = $node->port;
my $datadir = $node->data_dir;
$node->stop;

my $api     = PgWing::Test::FakeFlyApi->new('107', $token, 'pgapp/m1' => $node);
my $api_url = $api->url;
sub starts { return $api->starts('pgapp/m1'); }

my $pw = PgWing::Test->new(
	backends => [ [ m1 => "host=127.0.0.1 port=$port wake=fly-api:pgapp/m1" ] ],
	env      => { FLY_API_TOKEN => $token },
	settings => {
		fly_api_url       => $api_url,
		health_interval   => '200ms',
		health_fail_count => 1,
		wake_timeout      => '30s',
	});
$pw->start;
ok($pw->wait_for_log(qr/backend m1: unknown -> asleep/), 'the stopped machine is asleep');

# 20 clients at once: one start.
is($pw->psql_concurrently(20), 20, 'all 20 clients got their rows');
is(starts(), 1, 'one start for 20 clients');
ok((grep { m{^GET /v1/apps/pgapp/machines/m1/wait\?state=started&timeout=\d+\t} } $api->requests),
	'then a wait for state started');
is((grep { !/\tBearer \Q$token\E$/ } $api->requests), 0,
	'every request carries the token as a bearer token');
ok(!$pw->log_contains(qr/\Q$token\E/), 'the token is not logged');

# Stop the machine again (as Fly's autostop would); wait until pgwing sees it asleep.
sub stop_machine
{
	my $offset = $pw->log_position;
	system('pg_ctl', '-D', $datadir, '-m', 'fast', '-w', 'stop') == 0 or die 'pg_ctl stop failed';
	ok($pw->wait_for_log(qr/backend m1: \w+ -> asleep/, $offset), 'asleep again');
}

# One client, timed: the wake overhead is its wait less the start itself
# (start request to Postgres ready, as its log says).
stop_machine();
my $t0  = time();
my $one = $pw->safe_psql('SELECT 1', timeout => 60);
my $total = time() - $t0;
is($one, '1', 'one client wakes it again');
my $start_to_ready = $api->start_to_ready('pgapp/m1');
diag(sprintf('first query to first row %.0f ms; start to ready %.0f ms; overhead %.0f ms',
		$total * 1000, $start_to_ready * 1000, ($total - $start_to_ready) * 1000));

# Rate limited: the first two starts get 429; the wake retries and succeeds.
stop_machine();
my $before = starts();
$api->set(throttle => 2);
is($pw->safe_psql('SELECT 2', timeout => 60), '2', 'a client wakes it through two 429s');
is(starts() - $before, 3, 'the start was retried after each 429');
ok($pw->log_contains(qr/backend m1: wake request failed \(HTTP 429\); retrying/), 'the 429 is logged');
$pw->stop;
system('pg_ctl', '-D', $datadir, '-m', 'fast', '-w', 'stop') == 0 or die 'pg_ctl stop failed';

# A refused token: logged once, and the clients get why at wake_timeout. A
# token in Fly's own format goes as given, from the variable named.
$before = starts();
my $pw2 = PgWing::Test->new(
	name     => 'badtoken',
	backends => [ [ m1 => "host=127.0.0.1 port=$port wake=fly-api:pgapp/m1" ] ],
	env      => { DB_WAKE_TOKEN => 'FlyV1 fm2_wrong-token' },
	settings => {
		fly_api_url       => $api_url,
		fly_api_token_env => 'DB_WAKE_TOKEN',
		health_interval   => '200ms',
		health_fail_count => 1,
		wake_timeout      => '2s',
	});
$pw2->start;
ok($pw2->wait_for_log(qr/backend m1: unknown -> asleep/), 'bad token: asleep');
$t0 = time();
my ($rc, $out, $err) = $pw2->psql('SELECT 1');
my $elapsed = time() - $t0;
isnt($rc, 0, 'bad token: the query fails');
like($err, qr/backend m1 did not wake within 2 s: Machines API refused: HTTP 401 Unauthorized \(check the token\)/,
	'bad token: the client is told why');
cmp_ok($elapsed, '>=', 2, 'bad token: not before wake_timeout');
ok((grep { /\tFlyV1 fm2_wrong-token$/ } $api->requests), 'a FlyV1 token is sent as given');
is(scalar(() = $pw2->log_content =~ /backend m1: Machines API refused: HTTP 401/g), 1,
	'bad token: the refusal is logged once');
ok(!$pw2->log_contains(qr/wrong-token/), 'bad token: the token is not logged');
is(starts() - $before, 1, 'bad token: one start, not retried');
$pw2->stop;

# An API that keeps answering 429: retried until wake_timeout, and the clients
# are told what the last answer was.
$api->set(throttle => 1000);
my $pw4 = PgWing::Test->new(
	name     => 'throttled',
	backends => [ [ m1 => "host=127.0.0.1 port=$port wake=fly-api:pgapp/m1" ] ],
	env      => { FLY_API_TOKEN => $token },
	settings => {
		fly_api_url       => $api_url,
		health_interval   => '200ms',
		health_fail_count => 1,
		wake_timeout      => '2s',
	});
$pw4->start;
ok($pw4->wait_for_log(qr/backend m1: unknown -> asleep/), 'throttled: asleep');
($rc, $out, $err) = $pw4->psql('SELECT 1');
isnt($rc, 0, 'throttled: the query fails');
like($err, qr/backend m1 did not wake within 2 s: Machines API failed: HTTP 429/,
	'throttled: the client is told why');
$pw4->stop;
$api->set(throttle => undef);

# A fly_api_url pgwing cannot use (no TLS to the API): the clients are told.
my $pw5 = PgWing::Test->new(
	name     => 'badurl',
	backends => [ [ m1 => "host=127.0.0.1 port=$port wake=fly-api:pgapp/m1" ] ],
	settings => {
		fly_api_url       => 'https://api.machines.dev',
		health_interval   => '200ms',
		health_fail_count => 1,
		wake_timeout      => '1s',
	});
$pw5->start;
ok($pw5->wait_for_log(qr/backend m1: unknown -> asleep/), 'bad URL: asleep');
($rc, $out, $err) = $pw5->psql('SELECT 1');
like($err, qr{backend m1 did not wake within 1 s: https://api\.machines\.dev is not an http:// URL},
	'bad URL: the client is told why');
$pw5->stop;

# A discover = fly: line with no wake= wakes its stopped machines through the
# API: the app from the line, the machine id from all.vms.
{
	my $dns = PgWing::Test::FakeDns->new('107',
		"all.vms.pgapp.internal. 1 IN TXT \"m1 ams\"\nm1.vm.pgapp.internal. 1 IN A 127.0.0.1\n");
	$before = starts();
	my $pw3 = PgWing::Test->new(
		name         => 'discovered',
		backends     => [],
		extra_config => "discover = fly:pgapp port=$port\n",
		env          => { FLY_API_TOKEN => $token },
		settings     => {
			fly_api_url        => $api_url,
			dns_nameserver     => "127.0.0.1:" . $dns->port,
			discovery_interval => '300ms',
			health_interval    => '200ms',
			health_fail_count  => 1,
			wake_timeout       => '30s',
		});
	$pw3->start;
	ok($pw3->wait_for_log(qr/backend m1: unknown -> asleep/), 'discovered: the stopped machine is asleep');
	is($pw3->safe_psql('SELECT 3', timeout => 60), '3', 'discovered: a client wakes it');
	is(starts() - $before, 1, 'discovered: through the Machines API');
	$pw3->stop;
	$dns->stop;
	system('pg_ctl', '-D', $datadir, '-m', 'fast', '-w', 'stop') == 0 or die 'pg_ctl stop failed';
}

done_testing();
