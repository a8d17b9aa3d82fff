# Before a session gives back a server that ran what pgwing could not see
# into, pgwing asks the server what the session holds (#19, "capture session
# state from the server"). State made out of the statement tracker's sight (in
# a function, a DO block) keeps the session on its server instead of being
# lost by a move, but settings move with the values the server shows; a pin
# whose cause is gone is lifted, and the session moves. Each session does one
# thing, all idle past server_idle_timeout, the pooled servers they gave back
# are ended, and each then checks its state and where it runs.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;

my $node = new_node('primary');
$node->safe_psql(
	'postgres', q{
	CREATE ROLE low;
	GRANT pg_read_all_settings TO low;
	CREATE FUNCTION make_temp() RETURNS void LANGUAGE plpgsql
	  AS $$BEGIN CREATE TEMP TABLE hidden AS SELECT 11 AS v; END$$;
	CREATE FUNCTION take_lock() RETURNS void LANGUAGE plpgsql
	  AS $$BEGIN PERFORM pg_advisory_lock(8); END$$;
	CREATE FUNCTION set_path() RETURNS void LANGUAGE plpgsql
	  AS $$BEGIN PERFORM set_config('search_path', 'nowhere', false); END$$;
	CREATE FUNCTION become_low() RETURNS void LANGUAGE plpgsql
	  AS $$BEGIN PERFORM set_config('role', 'low', false); END$$;
	CREATE TABLE plain (v int);
	CREATE TABLE triggered (v int);
	CREATE FUNCTION on_insert() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN
	  PERFORM set_config('work_mem', '7MB', false);
	  CREATE TEMP TABLE IF NOT EXISTS trigger_made AS SELECT 13 AS v;
	  RETURN NEW;
	END$$;
	CREATE TRIGGER makes_state AFTER INSERT ON triggered
	  FOR EACH ROW EXECUTE FUNCTION on_insert();
	GRANT ALL ON plain, triggered TO PUBLIC;
});
my $pw = PgWing::Test->new(
	backends  => [ [ primary => $node ] ],
	auth_type => 'trust',
	settings  => { server_idle_timeout => '1s' });
$pw->start;

# Made where the tracker can't see and not carried: each keeps its server.
my %hidden = (
	temp_in_function => [ 'SELECT make_temp()',  'SELECT v FROM hidden',         '11' ],
	lock_in_function => [ 'SELECT take_lock()',  'SELECT pg_advisory_unlock(8)', 't' ],
	role_in_function => [ 'SELECT become_low()', 'SELECT current_user',          'low' ],
	listen_in_do     => [
		q{DO $$BEGIN EXECUTE 'LISTEN hidden_channel'; END$$},
		'SELECT pg_listening_channels()', 'hidden_channel' ],
	prepare_in_do => [
		q{DO $$BEGIN EXECUTE 'PREPARE hidden_stmt AS SELECT 12'; END$$},
		'EXECUTE hidden_stmt', '12' ],);
# Settings made or changed where the tracker can't see (or can't model: a
# set_config call), which pg_settings lists: the check reads their values,
# and the session moves with them.
my %carried = (
	set_in_function => [ 'SELECT set_path()', 'SHOW search_path', 'nowhere' ],
	set_config_call =>
	  [ "SELECT set_config('search_path', 'by_call', false)", 'SHOW search_path', 'by_call' ],
	set_config_named_in_capitals =>
	  [ "SELECT set_config('Work_Mem', '5MB', false)", 'SHOW work_mem', '5MB' ],
	set_over_recorded =>
	  [ 'SET search_path TO public; SELECT set_path()', 'SHOW search_path', 'nowhere' ],
	set_in_do => [ q{DO $$BEGIN EXECUTE 'SET datestyle TO sql'; END$$}, 'SHOW datestyle', 'SQL, MDY' ],
	datestyle_merged => [
		q{SET datestyle TO postgres; DO $$BEGIN EXECUTE 'SET datestyle TO dmy'; END$$},
		'SHOW datestyle', 'Postgres, DMY' ],);
# Pinned by what the tracker saw, then undone: each moves.
my %undone = (
	temp_dropped    => 'CREATE TEMP TABLE gone (v int); DROP TABLE gone',
	lock_released   => 'SELECT pg_advisory_lock(9); SELECT pg_advisory_unlock(9)',
	cursor_closed   => 'BEGIN; DECLARE c CURSOR WITH HOLD FOR SELECT 1; COMMIT; CLOSE c',);

# move_check = functions (the default): a plain write calls no code, and the
# server it ran on is handed over without a check.
my %plain = (plain_write => 'INSERT INTO plain VALUES (1)');

my (%bg, %pid);
for my $name (sort(keys %hidden), sort(keys %carried), sort(keys %undone), keys %plain)
{
	$bg{$name} = $pw->background_psql(application_name => $name);
	$bg{$name}->query_safe(
		($hidden{$name} // $carried{$name} // [ $undone{$name} // $plain{$name} ])->[0]);
	$pid{$name} = $bg{$name}->query_safe('SELECT pg_backend_pid()');
}

# Past server_idle_timeout and several sweeps: sessions that may move have
# given their servers back (checked first). Ending the pooled ones (reset:
# DISCARD ALL) makes each such session log in anew when it next speaks.
my %linked;
ok( wait_until(
		sub {
			%linked = map { $_->{application_name} => $_->{link} }
			  @{ $pw->admin_rows('SHOW CLIENTS') };
			!grep { $linked{$_} ne '' } keys(%undone), keys(%carried), keys(%plain);
		},
		10),
	'the sessions with carried settings, or whose pins are undone, gave their servers back');
sleep 1;
%linked = map { $_->{application_name} => $_->{link} } @{ $pw->admin_rows('SHOW CLIENTS') };
for my $name (sort keys %hidden)
{
	isnt($linked{$name}, '', "$name: the session keeps its server");
}
my ($stats) = grep { $_->{database} eq 'postgres' && $_->{target} eq 'rw' }
  @{ $pw->admin_rows('SHOW STATS') };
is($stats->{state_checks}, keys(%hidden) + keys(%carried) + keys(%undone),
	'SHOW STATS counts one check per session that called code or was pinned, none for a plain write');
is($stats->{state_check_pins}, scalar(keys %hidden), '... and those that kept a server');
$node->safe_psql('postgres',
	"SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
	  . "WHERE backend_type = 'client backend' AND query = 'DISCARD ALL'");

for my $name (sort keys %hidden)
{
	my (undef, $sql, $want) = @{ $hidden{$name} };
	is($bg{$name}->query($sql), $want, "$name: the session state is as it was");
	is($bg{$name}->query('SELECT pg_backend_pid()'), $pid{$name}, "$name: on the same backend");
}

for my $name (sort keys %carried)
{
	my (undef, $sql, $want) = @{ $carried{$name} };
	is($bg{$name}->query($sql), $want, "$name: the setting moved with the session");
	isnt($bg{$name}->query('SELECT pg_backend_pid()'), $pid{$name}, "$name: on another backend");
}

# A server that had a temp schema is closed, not pooled: a reset leaves the
# backend its temp namespace, which a fresh one lacks.
ok( $node->poll_query_until(
		'postgres', "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid{temp_dropped}"),
	'temp_dropped: its old server was closed, not pooled');
for my $name (sort keys %undone)
{
	isnt($bg{$name}->query_safe('SELECT pg_backend_pid()'),
		$pid{$name}, "$name: the session moved to another server");
}

$_->quit for values %bg;

# move_check = writes: state a trigger made (no call in the statement) is
# checked too: the temp table keeps the session on its server, the setting
# is as the trigger left it.
$pw->{settings}{move_check} = 'writes';
$pw->write_config;
my ($rc, undef, $err) = $pw->console('RELOAD');
is($rc, 0, 'RELOAD with move_check = writes') or diag $err;
my $trig = $pw->background_psql(application_name => 'trigger');
$trig->query_safe('INSERT INTO triggered VALUES (1)');
my $trig_pid = $trig->query_safe('SELECT pg_backend_pid()');
sleep 3;
%linked = map { $_->{application_name} => $_->{link} } @{ $pw->admin_rows('SHOW CLIENTS') };
isnt($linked{trigger}, '', 'trigger: the session keeps its server (a temp table the trigger made)');
is($trig->query('SELECT v FROM trigger_made'), '13', 'trigger: its temp table is there');
is($trig->query('SHOW work_mem'), '7MB', 'trigger: its setting is as it set it');
is($trig->query('SELECT pg_backend_pid()'), $trig_pid, 'trigger: on the same backend');
$trig->quit;
$pw->stop;
done_testing();
