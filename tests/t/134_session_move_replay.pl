# What a moved session's replay does on its new server (#19 items 7, 10, 16):
# each prepared statement is made again alone, with the text its client sent,
# as pg_prepared_statements shows it; one that can't be made again (its
# table was dropped) leaves the session alive, as Postgres keeps a session
# whose statement lost its table; and any other state the new server refuses
# (the role was dropped) ends the session with 08006 saying why, at its next
# statement.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;
use Time::HiRes qw(time);

my $node = new_node('primary');
$node->safe_psql('postgres', 'CREATE ROLE doomed NOLOGIN; CREATE TABLE dropped (v int)');
my $pw = PgWing::Test->new(
	backends  => [ [ primary => $node ] ],
	auth_type => 'trust',
	settings  => { server_idle_timeout => '1s' });
$pw->start;

# A raw session's answer to one simple Query: its rows (first column), and
# its error's fields, or eof when the connection ended.
sub query
{
	my ($sock, $sql) = @_;
	my %res = (rows => []);
	print $sock pg_message('Q', "$sql\0");
	while (1)
	{
		my ($t, $b) = read_message($sock, 30);
		if (!defined $t)
		{
			$res{eof} = 1;
			return \%res;
		}
		push @{ $res{rows} }, substr($b, 6, unpack('N', substr($b, 2, 4))) if $t eq 'D';
		$res{error} = error_fields($b) if $t eq 'E';
		return \%res if $t eq 'Z';
	}
}

sub session
{
	my ($name) = @_;
	my $sock = $pw->raw_connect;
	ok(raw_login($sock, params => { application_name => $name })->{ok}, "$name: logged in");
	return $sock;
}

# Idle past server_idle_timeout, the sessions give their servers back;
# ending those backends while they are pooled makes each session's next
# statement run on another, rebuilt from what the session did.
sub move_all
{
	my (%sessions) = @_;
	my %pid = map { $_ => query($sessions{$_}, 'SELECT pg_backend_pid()')->{rows}[0] }
	  keys %sessions;
	my $deadline = time + time_bound(30);
	while (time < $deadline
		&& grep { $sessions{ $_->{application_name} } && $_->{link} ne '' }
		@{ $pw->admin_rows('SHOW CLIENTS') })
	{
		select(undef, undef, undef, 0.2);
	}
	$node->safe_psql('postgres',
		'SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE pid IN ('
		  . join(',', values %pid) . ')');
	return \%pid;
}

my $texts = q{SELECT string_agg(name || ': ' || statement, ' | ' ORDER BY name)
	FROM pg_prepared_statements};

# Item 7: each statement keeps the text its client sent, whole, as directly.
my $prep = session('prepared');
query($prep, $_)
  for ('PREPARE one AS SELECT 1;', "PREPARE two (int) AS SELECT \$1 + 1; -- the second\n",
	'SET work_mem = 5000');
my $before = query($prep, $texts)->{rows}[0];
is($before, "one: PREPARE one AS SELECT 1; | two: PREPARE two (int) AS SELECT \$1 + 1; -- the second\n",
	'prepared: Postgres shows each statement with its own query text');

# Item 16: a statement whose table is dropped can't be prepared again.
my $lost = session('lost_table');
query($lost, $_) for ('PREPARE reads_dropped AS SELECT v FROM dropped', 'PREPARE kept AS SELECT 3');

# Item 10: a role dropped under a session that SET it.
my $role = session('dropped_role');
query($role, 'SET ROLE doomed');
$node->safe_psql('postgres', 'DROP TABLE dropped; DROP ROLE doomed');

my $old = move_all(prepared => $prep, lost_table => $lost, dropped_role => $role);

sub moved
{
	my ($sock, $name) = @_;
	my $now = query($sock, 'SELECT pg_backend_pid()')->{rows}[0];
	ok(defined $now && $now != $old->{$name}, "$name: the session moved");
	return;
}

moved($prep, 'prepared');
is(query($prep, $texts)->{rows}[0], $before, 'prepared: the texts are the same after the move');
is(query($prep, 'EXECUTE two(41)')->{rows}[0], '42', 'prepared: a statement runs after the move');

# The session goes on, and only the statement that lost its table fails,
# when it is executed.
is(query($lost, 'EXECUTE kept')->{rows}[0], '3',
	'lost table: the session is alive after the move, its other statement kept');
moved($lost, 'lost_table');
my $failed = query($lost, 'EXECUTE reads_dropped');
ok(!$failed->{eof} && $failed->{error}{S} eq 'ERROR',
	'lost table: the statement whose table was dropped fails when executed, the session stays');
is($failed->{error}{C}, '26000', 'lost table: it is no longer prepared (Postgres: 42P01)');
is(query($lost, 'SELECT 4')->{rows}[0], '4', 'lost table: the session goes on');
# Gone for good, as documented: a table made again does not bring it back
# (Postgres would plan it again), and its name is free (Postgres: 42P05).
$node->safe_psql('postgres', 'CREATE TABLE dropped (v int)');
is(query($lost, 'EXECUTE reads_dropped')->{error}{C},
	'26000', 'lost table: still not prepared once the table is back');
ok(!defined query($lost, 'PREPARE reads_dropped AS SELECT 5')->{error},
	'lost table: its name can be prepared again');
is(query($lost, 'EXECUTE reads_dropped')->{rows}[0], '5', 'lost table: ... and runs as the new one');

# The session can't be carried, and says so at its next statement.
my $dead = query($role, 'SELECT current_user');
is($dead->{error}{C}, '08006', 'dropped role: 08006');
like(
	$dead->{error}{M},
	qr/^session state could not be carried to the new server: role "doomed" does not exist/,
	'dropped role: the client is told why its session could not be carried');
ok($dead->{eof}, 'dropped role: the session ended');

close $_ for ($prep, $lost, $role);
$pw->stop;
done_testing();
