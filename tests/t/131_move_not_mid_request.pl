# A session moves only at an idle point: never between a Parse and the rest of
# its request, nor after a request that parsed the unnamed statement until it
# is executed (it would be lost: psql's \gdesc), and never
# while an Execute sent with Flush instead of Sync runs (a pipeline would
# hang). server_idle_timeout is short and the pool small, so pgwing would
# release the server at any other quiet moment.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;

my $node = new_node('primary');
my $pw = PgWing::Test->new(
	backends  => [ [ primary => $node ] ],
	auth_type => 'trust',
	settings  => { server_idle_timeout => '1s', default_pool_size => 2 });
$pw->start;

# The messages up to and including one of type $stop (or an error or the end).
sub read_until
{
	my ($s, $stop) = @_;
	my @types;
	while (1)
	{
		my ($t, $b) = read_message($s, 30);
		if (!defined $t)
		{
			push @types, "($b)";
			last;
		}
		push @types, $t eq 'E' ? 'E:' . (error_fields($b)->{M} // '') : $t;
		last if $t eq $stop;
	}
	return join(' ', @types);
}

# Past server_idle_timeout and several sweeps after it.
my $quiet = 2.5;

my $s = $pw->raw_connect;
ok(raw_login($s, params => { application_name => 'midreq' })->{ok}, 'logged in');
my $pid = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE application_name = 'midreq'");

# Parse of the unnamed statement, Flush; the rest comes after a quiet spell.
print $s pg_message('P', "\0SELECT \$1::int * 2\0" . pack('n', 0)) . pg_message('H');
is(read_until($s, '1'), '1', 'ParseComplete after Flush');
select(undef, undef, undef, $quiet);
print $s pg_message('B', "\0\0" . pack('n', 0) . pack('n', 1) . pack('N', 2) . '21' . pack('n', 0))
  . pg_message('E', "\0" . pack('N', 0))
  . pg_message('S');
is(read_until($s, 'Z'), '2 D C Z',
	'Bind/Execute after a quiet spell use the unnamed statement it parsed');
is( $node->safe_psql(
		'postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE pid = $pid"),
	'1',
	'the session kept its server through the quiet spell');

# Execute + Flush of a query that outlasts server_idle_timeout, as a
# pipelining driver sends it; the Sync comes only after its answer.
print $s pg_message('P', "\0SELECT pg_sleep($quiet)::text\0" . pack('n', 0))
  . pg_message('B', "\0\0" . pack('n', 0) . pack('n', 0) . pack('n', 0))
  . pg_message('E', "\0" . pack('N', 0))
  . pg_message('H');
is(read_until($s, 'C'), '1 2 D C', 'the query sent with Flush is answered whole');
print $s pg_message('S');
is(read_until($s, 'Z'), 'Z', 'and its Sync then');

# psql's \gdesc: Parse + Sync, then Describe + Sync in a request of its own.
# Between the two the session is at an idle point, but the unnamed statement
# lives on its server (Postgres keeps it until the next Parse of it): the
# session keeps that server until it has executed it.
print $s pg_message('P', "\0SELECT \$1::int AS doubled\0" . pack('n', 0)) . pg_message('S');
is(read_until($s, 'Z'), '1 Z', 'Parse + Sync of the unnamed statement');
select(undef, undef, undef, $quiet);
print $s pg_message('D', "S\0") . pg_message('S');
is(read_until($s, 'Z'), 't T Z', 'Describe after a quiet spell: the statement is still there');
print $s pg_message('B', "\0\0" . pack('n', 0) . pack('n', 1) . pack('N', 1) . '7' . pack('n', 0))
  . pg_message('E', "\0" . pack('N', 0))
  . pg_message('S');
is(read_until($s, 'Z'), '2 D C Z', 'and it runs');

# At a real idle point the session still moves, and its next query works.
select(undef, undef, undef, $quiet);
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid"),
	'at an idle point the server is released after server_idle_timeout');
print $s pg_message('Q', "SELECT 42\0");
is(read_until($s, 'Z'), 'T D C Z', 'the session goes on on another server');

close $s;
$pw->stop;
done_testing();
