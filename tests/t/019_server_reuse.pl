# Server reuse: a client that leaves gives its server back to the pool, reset
# (DISCARD ALL); the next client of the same database, user and startup
# parameters gets that Postgres backend instead of a new one, without the last
# one's session state. A pool that knows the welcome logs clients in without a
# server: idle clients hold no backend. Pooled servers go after
# server_idle_timeout, and when their backend is no longer routed to; a client
# welcomed with another backend's parameters is told what changed.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;
use Time::HiRes qw(usleep);

my $a = new_node('a');
my $b = new_node('b');
$b->safe_psql('postgres', "ALTER SYSTEM SET timezone = 'Asia/Kathmandu'; SELECT pg_reload_conf()");
my $a_tz = $a->safe_psql('postgres', 'SHOW timezone');
isnt($a_tz, 'Asia/Kathmandu', 'the two backends report different time zones');

my $pw = PgWing::Test->new(
	backends => [ [ a => $a ] ],
	settings => {
		admin_users     => 'admin',
		health_interval => '200ms',
		health_user     => os_user(),
	});
$pw->start;
ok($pw->wait_for_log(qr/backend a: unknown -> up \(primary/), 'backend a probed up');

sub backends_on
{
	my ($node, $app) = @_;
	return $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE application_name = '$app'");
}

# The pool's row of SHOW POOLS: sv_active, sv_idle.
sub pool_servers
{
	my ($p) = @_;
	for my $l (split /\n/, $p->safe_psql('SHOW POOLS', dbname => 'pgwing', user => 'admin'))
	{
		my @v = split /\|/, $l, -1;
		return ($v[6], $v[7]) if $v[0] eq 'postgres' && $v[1] eq os_user() && $v[2] eq 'rw';
	}
	return (-1, -1);
}

# Until the pool holds n reset, idle servers and none busy.
sub wait_pooled
{
	my ($p, $n) = @_;
	for (1 .. 100)
	{
		my ($active, $idle) = pool_servers($p);
		return 1 if $active == 0 && $idle == $n;
		usleep(50_000);
	}
	return 0;
}

# Reuse.
my $pid1 = $pw->safe_psql('SELECT pg_backend_pid()', application_name => 'reuse');
ok(wait_pooled($pw, 1), 'SHOW POOLS: the server is idle in the pool after its client left');
my @servers = grep { /\|idle\|/ } split /\n/,
  $pw->safe_psql('SHOW SERVERS', dbname => 'pgwing', user => 'admin');
is(scalar @servers, 1, 'SHOW SERVERS: one idle server, without a client');
my $pid2 = $pw->safe_psql('SELECT pg_backend_pid()', application_name => 'reuse');
is($pid2, $pid1, 'the second client gets the Postgres backend of the first');
is(backends_on($a, 'reuse'), '1', 'one Postgres backend served both clients');

my %pids;
for (1 .. 8)
{
	wait_pooled($pw, 1);
	$pids{ $pw->safe_psql('SELECT pg_backend_pid()', application_name => 'reuse') } = 1;
}
is_deeply([ keys %pids ], [$pid1], 'eight clients in turn: all on the one pooled backend');

# No session state leaks to the next client. State the reset takes away
# (SET, prepared statements) leaves the server pooled; a session that made
# what pins it (a temp table, set_config(), a session lock) has its server
# closed instead, as the reset would leave the backend its temp namespace.
wait_pooled($pw, 1);
my $default_work_mem = $a->safe_psql('postgres', 'SHOW work_mem');
my $defaults_sql =
    "SELECT pg_backend_pid(), current_setting('work_mem'), current_setting('search_path'), "
  . "to_regclass('pg_temp.leak_t') IS NULL, "
  . "(SELECT count(*) FROM pg_prepared_statements), "
  . "(SELECT count(*) FROM pg_locks WHERE locktype = 'advisory')";
my $bg = $pw->background_psql(application_name => 'reuse');
$bg->query_safe("SET work_mem = '7MB'");
$bg->query_safe('PREPARE leak_q AS SELECT 1');
is($bg->query_safe('SELECT pg_backend_pid()'), $pid1, 'the stateful session is on the pooled backend');
$bg->quit;
ok(wait_pooled($pw, 1), 'its server is pooled again');
is( $pw->safe_psql($defaults_sql, application_name => 'reuse'),
	"$pid1|$default_work_mem|\"\$user\", public|t|0|0",
	'the next client on that backend sees defaults: no SET or prepared statement');

$bg = $pw->background_psql(application_name => 'reuse');
$bg->query_safe("SELECT set_config('search_path', 'leaky', false)");
$bg->query_safe('CREATE TEMP TABLE leak_t AS SELECT 1 AS v');
$bg->query_safe('SELECT pg_advisory_lock(4242)');
is($bg->query_safe('SELECT pg_backend_pid()'), $pid1, 'the pinned session is on the pooled backend');
$bg->quit;
ok($a->poll_query_until('postgres', "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid1"),
	'its server is closed, not pooled');
my ($pid3, $rest) = split /\|/,
  $pw->safe_psql($defaults_sql, application_name => 'reuse'), 2;
isnt($pid3, $pid1, 'the next client gets a new backend');
is($rest, "$default_work_mem|\"\$user\", public|t|0|0",
	'with defaults: no setting, temp table, prepared statement or lock');

# Idle clients hold no backend: the first logs in through a server, the pool
# learns the welcome, the others are welcomed without one.
my @idle;
my $welcomed = 0;
my $first_pid;
for my $i (1 .. 200)
{
	my $s = $pw->raw_connect;
	my $r = raw_login($s, params => { application_name => 'idle200' });
	$welcomed++
	  if $r->{ok} && defined $r->{params}{server_version} && defined $r->{pid}
	  && $r->{params}{application_name} eq 'idle200';
	push @idle, $s;
}
is($welcomed, 200, '200 clients logged in, each with ParameterStatus and a cancel key');
is(backends_on($a, 'idle200'), '1', '200 idle clients hold one Postgres backend (the first login)');
my $s = $idle[-1];
print $s pg_message('Q', "SELECT 'answered by ' || inet_server_port()\0");
my ($row, @types);
while (1)
{
	my ($t, $body) = read_message($s, 10);
	last if !defined $t;
	push @types, $t;
	$row = $body if $t eq 'D';
	last if $t eq 'Z';
}
like($row // '', qr/answered by ${\ $a->port}$/, 'an idle client that speaks gets a server');
ok(!grep({ $_ eq 'S' } @types), 'nothing to report: its server matches its welcome');
close $_ for @idle;
# Their two servers join the 'reuse' one: other startup parameters, another server.
ok(wait_pooled($pw, 3), 'the servers are pooled when the clients leave');
is(backends_on($a, 'idle200'), '2', 'both idle200 servers stay, pooled');

# A reload moves the database to backend b: a's pooled servers close, and a
# client welcomed with a's parameters hears b's time zone.
my $offset = $pw->log_position;
$pw->set_backends([ [ b => $b ] ]);
$pw->write_config;
$pw->signal('HUP');
ok($pw->wait_for_log(qr/backend b: unknown -> up \(primary/, $offset), 'backend b probed up');
my $tries = 0;
usleep(100_000) while backends_on($a, 'idle200') ne '0' && ++$tries < 100;
is(backends_on($a, 'idle200') . backends_on($a, 'reuse'),
	'00', 'the pooled servers on the removed backend are closed');
$s = $pw->raw_connect;
my $r = raw_login($s, params => { application_name => 'idle200' });
is($r->{params}{TimeZone}, $a_tz, 'welcomed without a server, with the time zone the pool knew');
print $s pg_message('Q', "SELECT inet_server_port()\0");
my %reported;
undef $row;
while (1)
{
	my ($t, $body) = read_message($s, 10);
	last if !defined $t;
	if ($t eq 'S')
	{
		my ($k, $v) = split /\0/, $body;
		$reported{$k} = $v;
	}
	$row = $body if $t eq 'D';
	last if $t eq 'Z';
}
like($row // '', qr/${\ $b->port}$/, 'its first query runs on backend b');
is($reported{TimeZone}, 'Asia/Kathmandu', "b's time zone is reported to the client");
ok(!exists $reported{server_version}, 'unchanged parameters are not repeated');
close $s;
$pw->stop;

# server_idle_timeout closes pooled servers, so a backend can sleep. Long
# enough that a loaded machine still sees the server pooled first.
my $idle_timeout = int(time_bound(5));
my $pw2 = PgWing::Test->new(
	name     => 'idle',
	backends => [ [ b => $b ] ],
	settings => {
		admin_users         => 'admin',
		health_user         => os_user(),
		server_idle_timeout => "${idle_timeout}s",
	});
$pw2->start;
$pw2->safe_psql('SELECT 1', application_name => 'idlegone');
is(backends_on($b, 'idlegone'), '1', 'the server stays pooled after its client left');
$tries = 0;
usleep(100_000) while backends_on($b, 'idlegone') ne '0' && ++$tries < 10 * ($idle_timeout + 10);
is(backends_on($b, 'idlegone'), '0', 'the pooled server is closed after server_idle_timeout');
my ($active, $idle) = pool_servers($pw2);
is("$active|$idle", '0|0', 'SHOW POOLS: no servers left');
$pw2->stop;

# A backend that stops being the primary (here: another backend claims the
# role too, so none is routed to) loses its pooled servers at once.
my $pw5 = PgWing::Test->new(
	name     => 'demote',
	backends => [ [ a => $a ] ],
	settings => {
		health_interval => '200ms',
		health_user     => os_user(),
		hold_timeout    => '1s',
	});
$pw5->start;
$pw5->safe_psql('SELECT 1', application_name => 'demoted');
is(backends_on($a, 'demoted'), '1', 'a server pooled on backend a');
$offset = $pw5->log_position;
$pw5->set_backends([ [ a => $a ], [ b => $b ] ]);
$pw5->write_config;
$pw5->signal('HUP');
ok($pw5->wait_for_log(qr/several backends claim primary/, $offset), 'a is no longer the primary');
$tries = 0;
usleep(100_000) while backends_on($a, 'demoted') ne '0' && ++$tries < 50;
is(backends_on($a, 'demoted'), '0', 'its pooled server is closed');
$pw5->stop;

# server_lifetime: a pooled server older than it is not reused, and is closed.
my $pw4 = PgWing::Test->new(
	name     => 'life',
	backends => [ [ b => $b ] ],
	settings => {
		health_user         => os_user(),
		server_lifetime     => '3s',
		server_idle_timeout => '0',
	});
$pw4->start;
my $young = $pw4->safe_psql('SELECT pg_backend_pid()', application_name => 'lifetime');
wait_pooled($pw4, 1);
is($pw4->safe_psql('SELECT pg_backend_pid()', application_name => 'lifetime'),
	$young, 'a server younger than server_lifetime is reused');
usleep(3_200_000);
isnt($pw4->safe_psql('SELECT pg_backend_pid()', application_name => 'lifetime'),
	$young, 'an older one is not');
$tries = 0;
usleep(100_000)
  while $b->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE pid = $young")
  ne '0' && ++$tries < 50;
is($b->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE pid = $young"),
	'0', 'and it is closed');
$pw4->stop;

# default_pool_size: at the limit an idle session gives its server back to a
# client that needs one; sessions in a transaction or with a temp table keep
# theirs, and a client finding only those waits hold_timeout and is told why.
my $pw3 = PgWing::Test->new(
	name     => 'full',
	backends => [ [ b => $b ] ],
	settings => {
		health_user       => os_user(),
		default_pool_size => 2,
		hold_timeout      => '2s',
	});
$pw3->start;
my $s1 = $pw3->background_psql(application_name => 'capped');
my $s2 = $pw3->background_psql(application_name => 'capped');
$s1->query_safe("SET work_mem = '5MB'");
$s2->query_safe('SELECT 1');
is(backends_on($b, 'capped'), '2', 'two sessions, two servers: the pool is full');
is($pw3->safe_psql('SELECT 42', application_name => 'capped'),
	'42', 'a third client is served: an idle session gave its server back');
cmp_ok(backends_on($b, 'capped'), '<=', 2, 'still at most default_pool_size servers');
is($s1->query_safe('SHOW work_mem'), '5MB', 'the session that gave its server back kept its SET');
$s1->query_safe('BEGIN');
$s1->query_safe('SELECT 1');
$s2->query_safe('CREATE TEMP TABLE keep_t (v int)');
my ($rc, $out, $err) = $pw3->psql('SELECT 1', application_name => 'capped');
isnt($rc, 0, 'only busy sessions: a new client is not served');
like($err, qr/the pool is full \(default_pool_size 2\)/, 'it is told the pool is full');
$s1->query_safe('COMMIT');
is($pw3->safe_psql('SELECT 43', application_name => 'capped'),
	'43', 'served again once a session is idle');
$s1->quit;
$s2->quit;
$pw3->stop;

# default_pool_size lowered under the servers a pool has open: sessions keep
# theirs, a server given back over the limit is closed, and so are the oldest
# pooled ones over it.
my $pw6 = PgWing::Test->new(
	name     => 'lowered',
	backends => [ [ b => $b ] ],
	settings => { health_user => os_user(), server_idle_timeout => '1h' });
$pw6->start;

# Rows of SHOW CLIENTS or SHOW SERVERS for database postgres.
sub listed
{
	my ($what) = @_;
	return scalar grep { (split /\|/, $_, -1)[2] eq 'postgres' }
	  split /\n/, $pw6->safe_psql("SHOW $what", dbname => 'pgwing', user => 'admin');
}

# Quit sessions, and wait until pgwing has let their clients go.
sub quit_sessions
{
	my @s = @_;
	my $left = listed('CLIENTS') - @s;
	$_->quit for @s;
	for (1 .. 100)
	{
		last if listed('CLIENTS') == $left;
		usleep(50_000);
	}
	return;
}

my @lowered = map { $pw6->background_psql(application_name => 'lowered') } 1 .. 5;
$_->query_safe('SELECT 1') for @lowered;
is(listed('SERVERS'), 5, 'five sessions, five servers');
$pw6->safe_psql('SET default_pool_size = 3', dbname => 'pgwing', user => 'admin');
is($_->query_safe('SELECT 2'), '2', 'a session over the lowered limit keeps working')
  for @lowered;
quit_sessions(splice(@lowered, 0, 2));
is(listed('SERVERS'), 3, 'the two servers given back over the limit are closed, not pooled');
quit_sessions(shift @lowered);
is(listed('SERVERS'), 3, 'at the limit, a server given back is pooled');
$pw6->safe_psql('SET default_pool_size = 2', dbname => 'pgwing', user => 'admin');
is(listed('SERVERS'), 2, 'lowered again: the pooled server over it is closed');
ok( $b->poll_query_until('postgres',
		"SELECT count(*) = 2 FROM pg_stat_activity WHERE application_name = 'lowered'"),
	'two backends left on the server');
is($_->query_safe('SELECT 3'), '3', 'the sessions holding the two servers still work')
  for @lowered;
quit_sessions(@lowered);
$pw6->stop;

done_testing();
