# SIGTERM drains as an orchestrator expects:
#
# - /readyz turns 503 at once;
# - new clients are still accepted for shutdown_grace, refused with 57P03
#   after it;
# - a client in a transaction finishes it and its COMMIT takes effect;
# - an idle client gets 57P01 once the grace is over (as PostgreSQL's fast
#   shutdown says it);
# - the console answers SHOW CLIENTS throughout;
# - pgwing exits once the last client has gone, or at shutdown_timeout, when
#   the query still running is cancelled on its server.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;
use Time::HiRes qw(sleep time);

my $node = new_node('primary');
$node->safe_psql('postgres', 'CREATE TABLE drained (n int)');
my $metrics_port = PostgreSQL::Test::Cluster::get_free_port();
# The steps "within the grace" must fit in it, also for a slower (valgrind)
# pgwing: the grace stretches as the waits do (whole seconds).
my $grace_s = int(time_bound(5) + 0.999);
my $pw = start_pgwing_with(
	backends => [ [ pg1 => $node ] ],
	settings => {
		metrics_listen   => "127.0.0.1:$metrics_port",
		shutdown_grace   => "${grace_s}s",
		shutdown_timeout => '30s',
	},
	up => [ pg1 => 'primary' ]);

sub wait_exit
{
	my ($seconds) = @_;
	my $deadline = time + time_bound($seconds);
	sleep 0.05 while $pw->alive && time < $deadline;
	return !$pw->alive;
}

# Reads messages up to ReadyForQuery; returns their types and the last ErrorResponse.
sub run_query
{
	my ($sock, $sql, $timeout) = @_;
	print $sock pg_message('Q', "$sql\0");
	my ($types, $error) = ('', undef);
	while (1)
	{
		my ($t, $b) = read_message($sock, $timeout // 10);
		$types .= $t // "($b)";
		$error = error_fields($b) if defined $t && $t eq 'E';
		last if !defined $t || $t eq 'Z';
	}
	return ($types, $error);
}

sub show_clients
{
	my ($rc, $out) = $pw->psql('SHOW CLIENTS', dbname => 'pgwing', user => 'admin');
	return $rc == 0 ? scalar(split /\n/, $out) : -1;
}

my $in_xact = $pw->raw_connect;
ok(raw_login($in_xact, user => os_user())->{ok}, 'client 1 logged in');
my ($types) = run_query($in_xact, 'BEGIN; INSERT INTO drained VALUES (1)');
like($types, qr/Z$/, 'client 1 is in a transaction');
my $idle = $pw->raw_connect;
ok(raw_login($idle, user => os_user())->{ok}, 'client 2 logged in, idle');

my $term_at = time;
$pw->signal('TERM');
my ($status, $body) = $pw->http_get('/readyz');
is($status, 503, '/readyz: 503 right after SIGTERM');
like($body, qr/^draining/, '/readyz: says it is draining');

# Within the grace: a new client is served, the idle one still runs queries.
is($pw->safe_psql('SELECT 42'), '42', 'a new client is accepted within shutdown_grace');
($types) = run_query($idle, 'SELECT 1');
is($types, 'TDCZ', 'the idle client still runs queries within the grace');
cmp_ok(time - $term_at, '<', $grace_s, '... (all that within the grace)');
cmp_ok(show_clients(), '>=', 3, 'the console answers SHOW CLIENTS during the grace');

# After the grace: the idle client is told, the one in a transaction is not.
my ($t, $b) = read_message($idle, 10);
is($t, 'E', 'the idle client gets an ErrorResponse after the grace');
my $err = defined $t && $t eq 'E' ? error_fields($b) : {};
is($err->{C}, '57P01', '... 57P01 admin shutdown');
is($err->{M}, 'terminating connection due to administrator command', '... as PostgreSQL says it');
cmp_ok(time - $term_at, '>=', $grace_s - 0.1, '... not before shutdown_grace');
ok($pw->alive, 'pgwing still runs for the client in a transaction');
my ($rc, $out, $stderr) = $pw->psql('SELECT 1');
isnt($rc, 0, 'a new client after the grace is refused');
like($stderr, qr/the database system is shutting down/, '... as PostgreSQL refuses it (57P03)');
my $late = raw_login($pw->raw_connect);
is($late->{error}{C}, '57P03', 'a raw client after the grace: 57P03');
is($late->{auth}, undef, '... at its startup packet, before any authentication');
my $console = $pw->background_psql(dbname => 'pgwing', user => 'admin');
like($console->query_safe('SHOW CLIENTS'), qr/active/,
	'the console is reachable after the grace: SHOW CLIENTS lists the client in a transaction');
($status) = $pw->http_get('/readyz');
is($status, 503, '/readyz: still 503');

# The transaction finishes; its client is closed at its idle point.
my $error;
($types, $error) = run_query($in_xact, 'INSERT INTO drained VALUES (2)');
is($types, 'CZ', 'client 1 keeps working in its transaction');
($types, $error) = run_query($in_xact, 'COMMIT');
is($types, 'CZ', 'client 1 commits');
is($node->safe_psql('postgres', 'SELECT string_agg(n::text, \',\' ORDER BY n) FROM drained'),
	'1,2', 'the drained transaction is committed');
($t, $b) = read_message($in_xact, 10);
is($t, 'E', 'client 1 is closed once its transaction ended');
is(defined $t && $t eq 'E' ? error_fields($b)->{C} : undef, '57P01', '... with 57P01');
ok(wait_exit(10), 'pgwing exits once the last pool client has gone');
is($pw->exit_status, 0, 'exit code 0');
eval { $console->quit };

# shutdown_timeout: a query still running is cancelled on its server, and its
# client told why.
$pw->set(shutdown_grace => '0', shutdown_timeout => '2s');
$pw->start;
ok($pw->wait_for_backend('pg1', state => 'up', role => 'primary'), 'pg1 probed up again');
my $sleeper = $pw->raw_connect;
ok(raw_login($sleeper, user => os_user())->{ok}, 'a client logged in');
print $sleeper pg_message('Q', "SELECT pg_sleep(60) /* drained */\0");
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60) /* drained */%' "
		  . "AND pid <> pg_backend_pid()"),
	'the long query runs on the server');
$term_at = time;
$pw->signal('TERM');
($t, $b) = read_message($sleeper, 10);
is($t, 'E', 'the client of the running query gets an ErrorResponse');
is(defined $t && $t eq 'E' ? error_fields($b)->{C} : undef, '57P01', '... 57P01');
cmp_ok(time - $term_at, '>=', 1.9, '... at shutdown_timeout, not before');
ok(wait_exit(5), 'pgwing exits at shutdown_timeout');
is($pw->exit_status, 0, 'exit code 0');
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60) /* drained */%' "
		  . "AND pid <> pg_backend_pid()"),
	'the query was cancelled on its server, not left running');

done_testing();
