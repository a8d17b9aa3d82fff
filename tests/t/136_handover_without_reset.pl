# A server given back by a session that ran only provably read-only requests
# holds nothing of that session: the next client gets it at once, without
# server_reset_query (no DISCARD ALL round trip). Anything that may leave
# state behind (a user function that SETs or makes a temp table, a prepared
# statement, a LISTEN) still resets it: the next client sees a fresh session.
# server_reset_always = on resets after every session.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;

my $node = new_node('primary');
$node->safe_psql(
	'postgres', q{
	CREATE FUNCTION set_path() RETURNS int LANGUAGE plpgsql AS
	  $$ BEGIN PERFORM set_config('search_path', 'elsewhere', false); RETURN 1; END $$;
	CREATE FUNCTION make_temp() RETURNS int LANGUAGE plpgsql AS
	  $$ BEGIN EXECUTE 'CREATE TEMP TABLE scratch (a int)'; RETURN 1; END $$;
});
# One server: every client of the test gets the same one.
my $pw = PgWing::Test->new(
	backends  => [ [ primary => $node ] ],
	auth_type => 'trust',
	settings  => { default_pool_size => 1 });
$pw->start;

# (a) Read-only sessions, simple and extended protocol.
my $pid = $pw->safe_psql('SELECT pg_backend_pid()');
is($pw->last_query_of_pooled($node, $pid), 'SELECT pg_backend_pid()',
	'a read-only session: its server is pooled without a reset');
is($pw->safe_psql('SELECT pg_backend_pid()'), $pid, 'the next client has the same backend');
is($pw->last_query_of_pooled($node, $pid), 'SELECT pg_backend_pid()', 'still not reset');

# (Its startup parameters differ from psql's: it gets a server of its own.)
my $sock = $pw->raw_connect;
ok(raw_login($sock)->{ok}, 'an extended-protocol client logged in');
my ($xpid) = data_rows(raw_exchange($sock, 1, extended_messages('SELECT pg_backend_pid()')));
print $sock pg_message('X', '');
close $sock;
is($pw->last_query_of_pooled($node, $xpid), 'SELECT pg_backend_pid()',
	'an extended-protocol read: pooled without a reset');
$pid = $pw->safe_psql('SELECT pg_backend_pid()');

# (b) Each kind of state, then what the next client on that server sees.
my @dirty = (
	[ 'SELECT public.set_path()', 'SHOW search_path', '"$user", public', 'a SET made by a function' ],
	[ 'SELECT public.make_temp()', "SELECT count(*) FROM pg_class WHERE relname = 'scratch'", '0',
		'a temp table made by a function' ],
	[ 'PREPARE p AS SELECT 1', 'SELECT count(*) FROM pg_prepared_statements', '0',
		'a prepared statement' ],
	[ 'LISTEN ch', 'SELECT count(*) FROM pg_listening_channels()', '0', 'a LISTEN' ],);
for my $d (@dirty)
{
	my ($state, $check, $fresh, $what) = @$d;

	$pw->safe_psql($state);
	is($pw->last_query_of_pooled($node, $pid), 'DISCARD ALL', "$what: the server is reset");
	is($pw->safe_psql("SELECT pg_backend_pid(); $check"), "$pid\n$fresh",
		"$what: the next client on that backend sees a fresh session");
}

# server_reset_always: a read-only session's server is reset too.
$pw->set(server_reset_always => 'on');
$pw->write_config;
my $off = length($pw->log_content);
$pw->signal('HUP');
ok($pw->wait_for_log(qr/reloaded/i, $off), 'reloaded with server_reset_always = on');
$pw->safe_psql('SELECT 1');
is($pw->last_query_of_pooled($node, $pid), 'DISCARD ALL', 'server_reset_always: a read-only session resets');

$pw->stop;
done_testing();
