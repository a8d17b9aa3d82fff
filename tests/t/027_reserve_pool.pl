# reserve_pool_size: at a full pool, a client that has waited
# reserve_pool_timeout gets a server beyond default_pool_size; past the
# reserve, clients wait as before; a reserve server given back while nobody
# waits is closed; without a reserve the same client is told the pool is full.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;
use Time::HiRes qw(time);

my $node = new_node('primary');

sub backends_on
{
	return $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE application_name = 'reserve'");
}

my $pw = PgWing::Test->new(
	backends => [ [ primary => $node ] ],
	settings => {
		health_user          => os_user(),
		admin_users          => 'admin',
		default_pool_size    => 1,
		reserve_pool_size    => 1,
		reserve_pool_timeout => '1s',
		hold_timeout         => '30s',
	});
$pw->start;

sub admin { return $pw->safe_psql($_[0], dbname => 'pgwing', user => 'admin'); }

my $a = $pw->background_psql(application_name => 'reserve');
$a->query_safe('BEGIN');
$a->query_safe('SELECT 1');
is(backends_on(), '1', "A holds the pool's one server inside a transaction");

my $offset = length($pw->log_content);
my $t0 = time();
is($pw->safe_psql('SELECT 42', application_name => 'reserve'),
	'42', 'B is served although the pool is full');
cmp_ok(time() - $t0, '>=', 0.9, 'B waited reserve_pool_timeout first');
ok( $pw->wait_for_log(
		qr/opening a reserve server \(1 over default_pool_size, reserve_pool_size 1\)/,
		$offset),
	'the log says a reserve server opened');

ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = 'reserve'"),
	'B gone and nobody waiting: the reserve server is closed, A keeps its own');

# The reserve used up: B2 holds it inside a transaction, C waits out hold_timeout.
my $b2 = $pw->background_psql(application_name => 'reserve');
$b2->query_safe('BEGIN');
$b2->query_safe('SELECT 1');
is(backends_on(), '2', 'B2 holds the reserve server');
admin('SET hold_timeout = 3s');
my ($rc, $out, $err) = $pw->psql('SELECT 1', application_name => 'reserve');
isnt($rc, 0, 'C, past the reserve, is not served');
like(
	$err,
	qr/the pool is full \(default_pool_size 1, reserve_pool_size 1\)/,
	'C is told the pool and its reserve are full');
is(backends_on(), '2', 'no server beyond default_pool_size + reserve_pool_size');
$b2->query_safe('COMMIT');
$b2->quit;

# No reserve: the same client waits hold_timeout and is told the pool is full.
admin('SET reserve_pool_size = 0');
($rc, $out, $err) = $pw->psql('SELECT 1', application_name => 'reserve');
isnt($rc, 0, 'without a reserve, a client at the full pool is not served');
like($err, qr/the pool is full \(default_pool_size 1\)/, 'it is told the pool is full');

$a->query_safe('COMMIT');
is($pw->safe_psql('SELECT 43', application_name => 'reserve'),
	'43', 'served once A is idle again');
$a->quit;
$pw->stop;
done_testing();
