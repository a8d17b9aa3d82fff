# A psql query round trip through pgwing, and the startup packet reaching the
# server: database name, application_name, options, the server's
# ParameterStatus and a BackendKeyData, SSLRequest/GSSENCRequest answered 'N'.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;

my $node = new_node('primary');
$node->safe_psql('postgres',
	"CREATE DATABASE otherdb; CREATE SCHEMA wing_schema; "
	  . "CREATE TABLE wing_schema.marker AS SELECT 'found' AS v;");

my $pw = PgWing::Test->new(backends => [ [ primary => $node ] ], auth_type => 'trust');
$pw->start;

# Round trip, with several result rows and statements.
is($pw->safe_psql('SELECT 1'), '1', 'SELECT 1 through pgwing');
is($pw->safe_psql('SELECT sum(g) FROM generate_series(1, 10000) g; SELECT 42'),
	"50005000\n42", 'two statements, 10000 rows aggregated');
my $rows = $pw->safe_psql('SELECT g FROM generate_series(1, 5000) g');
is(scalar(split /\n/, $rows), 5000, '5000 result rows arrive');

# It is really the backend answering.
my $backend_port = $pw->safe_psql("SELECT current_setting('port')");
is($backend_port, $node->port, 'answered by the configured backend');

# Database name passes through; a missing one is the server's error.
is($pw->safe_psql('SELECT current_database()', dbname => 'otherdb'),
	'otherdb', 'database name passes through');
my ($rc, $out, $err) = $pw->psql('SELECT 1', dbname => 'no_such_db');
isnt($rc, 0, 'unknown database fails');
like($err, qr/database "no_such_db" does not exist/, 'server error for unknown database reaches client');

# application_name reaches the server and shows in pg_stat_activity.
is( $pw->safe_psql(
		'SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()',
		application_name => 'wing_app'),
	'wing_app',
	'application_name visible in pg_stat_activity');

# A second session sees the first one by its application_name.
my $bg = $pw->background_psql(application_name => 'wing_holder');
$bg->query_safe('SELECT 1');
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE application_name = 'wing_holder'"),
	'1',
	'held session visible on the server under its application_name');
$bg->quit;

# options=-c ... are honoured.
is( $pw->safe_psql('SHOW search_path; SELECT v FROM marker',
		options => '-c search_path=wing_schema'),
	"wing_schema\nfound",
	'options=-c search_path honoured');
is($pw->safe_psql('SHOW work_mem', options => '-c work_mem=7MB'),
	'7MB', 'options=-c work_mem honoured');

# Raw startup: the server's ParameterStatus and a BackendKeyData come through.
my $server_version = $node->safe_psql('postgres', 'SHOW server_version');
my $sock = $pw->raw_connect;
my $r = raw_login($sock, database => 'postgres', params => { application_name => 'raw' });
ok($r->{ok}, 'raw startup reaches ReadyForQuery') or diag explain $r;
is($r->{params}{server_version}, $server_version, 'ParameterStatus server_version is the server\'s');
is($r->{params}{application_name}, 'raw', 'ParameterStatus application_name echoes ours');
ok(defined $r->{pid} && defined $r->{key}, 'BackendKeyData sent');
print $sock pg_message('Q', "SELECT 'raw ok'\0");
my ($type, $body, @types);
my $datarow = '';
do {
	($type, $body) = read_message($sock);
	push @types, $type // "($body)";
	$datarow = $body if defined $type && $type eq 'D';
} while (defined $type && $type ne 'Z');
is(join('', @types), 'TDCZ', 'simple query answered with RowDescription, DataRow, CommandComplete, ReadyForQuery');
like($datarow, qr/raw ok/, 'DataRow carries the value');
print $sock pg_message('X');
($type, $body) = read_message($sock);
is($body, 'eof', 'Terminate closes the connection');
close $sock;

# SSLRequest and GSSENCRequest are answered 'N', then startup continues.
for my $req ([ SSLRequest => 80877103 ], [ GSSENCRequest => 80877104 ])
{
	my $s = $pw->raw_connect;
	print $s pack('N N', 8, $req->[1]);
	my $answer = '';
	my $sel = IO::Select->new($s);
	sysread($s, $answer, 1) if $sel->can_read(10);
	is($answer, 'N', "$req->[0] answered N");
	my $res = raw_login($s);
	ok($res->{ok}, "startup after $req->[0] works") or diag explain $res;
	close $s;
}

# psql insisting on TLS is refused cleanly (no TLS until the TLS issue).
($rc, $out, $err) = $pw->psql('SELECT 1', sslmode => 'require');
isnt($rc, 0, 'sslmode=require fails');
like($err, qr/server does not support SSL/, 'sslmode=require: server does not support SSL');

# Still serving afterwards.
is($pw->safe_psql('SELECT 2'), '2', 'still serving');

$pw->stop;
done_testing();
