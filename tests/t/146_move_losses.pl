# The rows of "What a move keeps" (doc/config.md) where a move loses or
# changes something, each as documented (#19: every row of that table has a
# test): currval(), a custom setting changed inside a function, defaults
# changed since the session logged in, an unnamed portal, and state made
# inside a function on a server lost before it was checked. Sessions idle past
# server_idle_timeout; the pooled servers they gave back are ended, so each
# session's next statement runs on a fresh backend.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;

my $node = new_node('primary');
$node->safe_psql(
	'postgres', q{
	CREATE SEQUENCE s;
	CREATE FUNCTION set_custom() RETURNS void LANGUAGE plpgsql
	  AS $$BEGIN PERFORM set_config('app.user_id', '42', false); END$$;
	CREATE FUNCTION make_temp() RETURNS void LANGUAGE plpgsql
	  AS $$BEGIN CREATE TEMP TABLE made AS SELECT 1 AS v; END$$;
});
my $pw = PgWing::Test->new(
	backends  => [ [ primary => $node ] ],
	auth_type => 'trust',
	settings  => { server_idle_timeout => '1s', health_interval => '200ms' });
$pw->start;

sub end_pooled_servers
{
	$node->safe_psql('postgres',
		"SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
		  . "WHERE backend_type = 'client backend' AND query = 'DISCARD ALL'");
}

# Errors are expected here: psql goes on after them, and keeps them in stderr.
sub session
{
	my $bg = $pw->background_psql(application_name => $_[0]);
	$bg->query_safe('\set ON_ERROR_STOP 0');
	return $bg;
}

my $seq = session('seq');
$seq->query_safe(q{SELECT nextval('s')});
my $custom = session('custom');
$custom->query_safe('SELECT set_custom()');
is($custom->query_safe(q{SELECT current_setting('app.user_id')}), '42', 'custom: set in a function');
my $defaults = session('defaults');
is($defaults->query_safe('SHOW work_mem'), '4MB', 'defaults: the login gave 4MB');
# Not through pgwing: nothing retires its logins (RECONNECT would).
$node->safe_psql('postgres', q{ALTER DATABASE postgres SET work_mem = '9MB'});

sleep 3;
end_pooled_servers();

$seq->query(q{SELECT currval('s')});
like($seq->{stderr}, qr/currval of sequence "s" is not yet defined in this session/,
	'currval: lost after a move, with the error a fresh session gets');
is($custom->query(q{SELECT current_setting('app.user_id', true)}), '',
	'a custom setting changed inside a function: lost after a move');
is($defaults->query_safe('SHOW work_mem'), '9MB',
	"defaults changed since the login: after a move, the new server's");
$_->quit for ($seq, $custom, $defaults);
$node->safe_psql('postgres', 'ALTER DATABASE postgres RESET work_mem');

# An unnamed portal: gone after its Sync, directly and through pgwing, move or not.
my $s = $pw->raw_connect;
ok(raw_login($s, params => { application_name => 'portal' })->{ok}, 'portal: logged in');
my @got = raw_exchange($s, 1,
	pg_message('P', "\0SELECT 1\0" . pack('n', 0)),
	pg_message('B', "\0\0" . pack('n', 0) . pack('n', 0) . pack('n', 0)), pg_message('S'));
is(join('', map { $_->[0] } @got), '12Z', 'portal: bound, then Sync');
sleep 3;
end_pooled_servers();
@got = raw_exchange($s, 1, pg_message('E', "\0" . pack('N', 0)), pg_message('S'));
my ($e) = grep { $_->[0] eq 'E' } @got;
is($e && error_fields($e->[1])->{C}, '34000', 'portal: executing it after a move fails as in Postgres');
close $s;

# State made inside a function, on a server lost before any check (its
# Postgres restarted): the session moves without it.
my $lost = session('lost');
$lost->query_safe('SELECT make_temp()');
is($lost->query_safe('SELECT v FROM made'), '1', 'lost: a temp table made in a function');
# Not lost but refused: a setting the client made with set_config, which
# only the check would have read, is not left behind by a move of a lost
# server; the session ends, told why (row "set_config(name, value, false) of a setting Postgres
# lists").
my $configured = $pw->raw_connect;
ok(raw_login($configured, params => { application_name => 'configured' })->{ok},
	'configured: logged in');
is( join('|',
		data_rows(
			raw_exchange($configured, 1,
				query_message(q{SELECT set_config('search_path', 'by_call', false)})))),
	'by_call',
	'configured: search_path made with set_config');
$node->restart;
$lost->query('SELECT v FROM made');
like($lost->{stderr}, qr/relation "made" does not exist/,
	'lost: after its server was lost, the session goes on without it');
$lost->quit;
# The answer is a FATAL and the end of the connection, no ReadyForQuery.
print $configured query_message('SHOW search_path');
my ($t, $b) = read_message($configured, 10);
my $fields = defined $t && $t eq 'E' ? error_fields($b) : {};
is($fields->{C}, '08006', 'configured: after its server was lost, 08006');
like(
	$fields->{M} // '',
	qr/the session can't move to another server: it has a setting made with set_config/,
	'configured: ... saying why the session could not move');
ok(!defined((read_message($configured, 10))[0]), 'configured: ... and the connection ends');
close $configured;

$pw->stop;
done_testing();
