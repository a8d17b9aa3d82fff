# Session state the statement tracker can't carry exactly keeps the session on
# its server, and what it can carry arrives as it was (#19 items 3-6, 9, 14).
# Each session does one thing, all idle past server_idle_timeout, the pooled
# servers they gave back are ended, and each then checks its state against
# what a direct session shows.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;

my $node = new_node('primary');
my $pw = PgWing::Test->new(
	backends  => [ [ primary => $node ] ],
	auth_type => 'trust',
	settings  => { server_idle_timeout => '1s' });
$pw->start;

my %setup = (
	datestyle => 'SET datestyle TO postgres; SET datestyle TO dmy',
	set_config => "SELECT set_config('myapp.user', '42', false)",
	# The lock, which a check would see go, is not all that pins it.
	custom_beside_lock => "SELECT pg_advisory_lock(3), set_config('myapp.role', 'x', false); "
	  . 'SELECT pg_advisory_unlock(3)',
	lock_after_rollback => 'BEGIN; SELECT pg_advisory_lock(7); ROLLBACK',
	savepoint =>
	  'BEGIN; SAVEPOINT s; SET search_path = nowhere; ROLLBACK TO s; COMMIT',
	temp_function =>
	  "CREATE FUNCTION pg_temp.seven() RETURNS int AS 'SELECT 7' LANGUAGE sql",
	temp_table => 'CREATE TEMP TABLE five AS SELECT 5 AS v',
	cursor     => 'DECLARE held CURSOR WITH HOLD FOR SELECT 6',);
my %check = (
	datestyle           => [ 'SHOW datestyle', 'Postgres, DMY' ],
	set_config          => [ "SELECT current_setting('myapp.user')", '42' ],
	custom_beside_lock  => [ "SELECT current_setting('myapp.role')", 'x' ],
	lock_after_rollback => [ 'SELECT pg_advisory_unlock(7)', 't' ],
	savepoint           => [ 'SHOW search_path', '"$user", public' ],
	temp_function       => [ 'SELECT pg_temp.seven()', '7' ],
	temp_table          => [ 'SELECT v FROM five', '5' ],
	cursor              => [ 'FETCH held', '6' ],);

my %bg;
for my $name (sort keys %setup)
{
	$bg{$name} = $pw->background_psql(application_name => 'exact');
	$bg{$name}->query_safe($setup{$name});
}

# A SET through the extended protocol (Parse/Bind/Execute), as drivers send
# statements with parameters.
my $raw = $pw->raw_connect;
ok(raw_login($raw, params => { application_name => 'exact' })->{ok}, 'raw session logged in');
print $raw pg_message('P', "\0SET datestyle TO german\0" . pack('n', 0))
  . pg_message('B', "\0\0" . pack('n', 0) . pack('n', 0) . pack('n', 0))
  . pg_message('E', "\0" . pack('N', 0))
  . pg_message('S');
my $answer = '';
while (1)
{
	my ($t, $b) = read_message($raw, 30);
	$answer .= $t // "($b)";
	last if !defined $t || $t eq 'Z';
}
is($answer, '12CSZ', 'SET through the extended protocol answered (its new DateStyle reported)');

# Past server_idle_timeout and several sweeps: sessions that may move have
# given their servers back, which were reset for the pool (DISCARD ALL).
# Ending those makes each such session log in anew when it next speaks.
sleep 3;
$node->safe_psql('postgres',
	"SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
	  . "WHERE application_name = 'exact' AND query = 'DISCARD ALL'");

for my $name (sort keys %check)
{
	my ($sql, $want) = @{ $check{$name} };
	# Not query_safe: a lost state shows as an error or a warning, and the
	# other sessions are still to be checked.
	is($bg{$name}->query($sql), $want, "$name: the session state is as it was");
	$bg{$name}->quit;
}

print $raw pg_message('Q', "SHOW datestyle\0");
my $shown;
while (1)
{
	my ($t, $b) = read_message($raw, 30);
	last if !defined $t || $t eq 'Z';
	$shown = substr($b, 6) if $t eq 'D';
}
is($shown, 'German, DMY', 'extended-protocol SET: the session state is as it was');
close $raw;

# A server whose session made a temp object is not handed to the next client:
# the reset leaves the backend its temp namespace, which a fresh one lacks.
my $tmp = $pw->background_psql(application_name => 'temp_user');
$tmp->query_safe('CREATE TEMP TABLE scratch (v int)');
my $tmp_pid = $tmp->query_safe('SELECT pg_backend_pid()');
$tmp->quit;
ok($node->poll_query_until('postgres', "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $tmp_pid"),
	'the server of a session with a temp table is closed when the session ends');

$pw->stop;
done_testing();
