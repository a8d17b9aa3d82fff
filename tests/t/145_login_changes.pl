# What a login gets changes under pooled servers (#19, "fidelity of reuse"):
# ALTER DATABASE/ROLE ... SET through pgwing retires the logins of that
# database or role (pooled servers close, busy ones when given back), so the
# next client gets what a fresh backend gets; and DROP DATABASE, ALTER
# DATABASE ... RENAME and CREATE DATABASE ... TEMPLATE, which Postgres refuses
# while any session is connected to the database, find pgwing's own idle
# servers gone, as a direct client would right after the last session left.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;

my $node = new_node('primary');
$node->safe_psql('postgres', $_)
  for ('CREATE ROLE app LOGIN', 'CREATE DATABASE shop', 'CREATE DATABASE store',
	'CREATE DATABASE model', 'CREATE DATABASE old_name');
my $pw = PgWing::Test->new(
	backends  => [ [ primary => $node ] ],
	auth_type => 'trust');
$pw->start;

sub backends_of
{
	my ($db) = @_;
	return $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE datname = '$db' AND backend_type = 'client backend'");
}

# A client of each database comes and goes: its server stays pooled.
for my $db (qw(shop store model old_name))
{
	is($pw->safe_psql('SELECT 1', dbname => $db), '1', "$db: a client came and went");
	is(backends_of($db), '1', "$db: pgwing keeps its server pooled");
}

for my $case (
	[ 'DROP DATABASE shop',                       'shop',     'dropped' ],
	[ 'CREATE DATABASE copy TEMPLATE model',      'model',    'used as a template' ],
	[ 'ALTER DATABASE old_name RENAME TO renamed', 'old_name', 'renamed' ],)
{
	my ($sql, $db, $what) = @$case;
	my ($rc, undef, $err) = $pw->psql($sql);
	is($rc, 0, "$db $what through pgwing right after its last client left") or diag $err;
	is(backends_of($db), '0', "$db: pgwing's pooled server is gone");
}
# A session connected through pgwing with its server is in the way, as directly.
$node->safe_psql('postgres', 'CREATE DATABASE held');
my $holder = $pw->background_psql(dbname => 'held');
$holder->query_safe('SELECT 1');
my ($rc, undef, $err) = $pw->psql('DROP DATABASE held');
isnt($rc, 0, 'held: DROP DATABASE fails while a session is connected to it');
like($err, qr/is being accessed by other users/, '... with the error a direct client gets');
is($holder->query_safe('SELECT 2'), '2', '... and the session goes on');
$holder->quit;

is($node->safe_psql('postgres', "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database "
	  . "WHERE datname IN ('shop', 'copy', 'renamed', 'old_name')"),
	'copy,renamed', 'the three statements did what they say');

# ALTER DATABASE ... SET: a pooled server and a busy one of store predate it.
is($pw->safe_psql('SHOW work_mem', dbname => 'store'), '4MB', 'store: the default work_mem');
my $busy = $pw->background_psql(dbname => 'store');
my $busy_pid = $busy->query_safe('SELECT pg_backend_pid()');
$pw->safe_psql(q{ALTER DATABASE store SET work_mem = '7MB'});
is($pw->safe_psql('SHOW work_mem', dbname => 'store'), '7MB',
	'store: the next client gets the new default, as from a fresh backend');
is($busy->query_safe('SHOW work_mem'), '4MB',
	'store: a session that was there keeps what its login gave it, as directly');
$busy->quit;
ok( $node->poll_query_until(
		'postgres', "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $busy_pid"),
	'store: the busy server, given back, is closed instead of pooled');

# ALTER ROLE ... SET, and ... IN DATABASE.
is($pw->safe_psql('SHOW work_mem', user => 'app'), '4MB', 'app: the default work_mem');
$pw->safe_psql(q{ALTER ROLE app SET work_mem = '5MB'});
is($pw->safe_psql('SHOW work_mem', user => 'app'), '5MB', 'app: ALTER ROLE ... SET is seen');
$pw->safe_psql(q{ALTER ROLE app IN DATABASE postgres SET work_mem = '6MB'});
is($pw->safe_psql('SHOW work_mem', user => 'app'), '6MB',
	'app: ALTER ROLE ... IN DATABASE ... SET is seen');
is($pw->safe_psql('SHOW work_mem'), '4MB', 'another role of the database keeps its default');

$pw->stop;
done_testing();
