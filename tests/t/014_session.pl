# A session through pgwing behaves like a direct one: errors don't end it,
# notices arrive, session state and transactions stay on one server, extended
# protocol with Flush, the function-call message; leaving resets the server,
# dying frees it and its locks.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;

my $node = new_node('primary');
$node->safe_psql('postgres', 'CREATE TABLE locked (v int)');
my $pw = PgWing::Test->new(backends => [ [ primary => $node ] ], auth_type => 'trust');
$pw->start;

# Errors and notices.
my ($rc, $out, $err) = $pw->psql(
	"SELECT 1/0;\nSELECT 2;\nDO \$\$ BEGIN RAISE NOTICE 'wing notice %', 42; END \$\$;\nSELECT 3;",
	extra_params => [ '-v', 'ON_ERROR_STOP=0' ]);
is($out, "2\n3", 'statements after an error run in the same session');
like($err, qr/division by zero/, 'the error reaches the client');
like($err, qr/NOTICE:  wing notice 42/, 'the notice reaches the client');

# Session state and transactions.
my $bg = $pw->background_psql(application_name => 'stateful');
$bg->query_safe("SET work_mem = '3MB'");
$bg->query_safe('CREATE TEMP TABLE tmp_t AS SELECT 1 AS v');
$bg->query_safe('PREPARE q(int) AS SELECT $1 * 2');
is($bg->query_safe('SHOW work_mem'), '3MB', 'SET persists in the session');
is($bg->query_safe('SELECT v FROM tmp_t'), '1', 'temp table persists in the session');
is($bg->query_safe('EXECUTE q(21)'), '42', 'prepared statement persists in the session');
$bg->query_safe('BEGIN');
$bg->query_safe('CREATE TABLE in_tx (v int)');
my $x1 = $bg->query_safe('SELECT txid_current()');
my $x2 = $bg->query_safe('SELECT txid_current()');
is($x1, $x2, 'one transaction across statements');
$bg->query_safe('ROLLBACK');
is($pw->safe_psql("SELECT to_regclass('in_tx') IS NULL"), 't', 'ROLLBACK undid the transaction');
$bg->quit;
# Its server is reset (DISCARD ALL) and pooled for the next client.
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name = 'stateful' "
		  . "AND query <> 'DISCARD ALL'"),
	'the server session is reset when the client quits');

# Raw extended protocol, with Flush before Sync.
sub msgs_until
{
	my ($s, $stop) = @_;
	my @m;
	while (1)
	{
		my ($t, $b) = read_message($s, 10);
		push @m, [ $t // "($b)", $b ];
		last if !defined $t || $t eq $stop || $t eq 'E';
	}
	return @m;
}
my $s = $pw->raw_connect;
ok(raw_login($s)->{ok}, 'raw login');
print $s pg_message('P', "s1\0SELECT \$1::int + 1\0" . pack('n', 0))
  . pg_message('H');
my @m = msgs_until($s, '1');
is(join('', map { $_->[0] } @m), '1', 'Flush delivers ParseComplete before any Sync');
print $s pg_message('B', "\0s1\0" . pack('n', 0) . pack('n', 1) . pack('N', 2) . '41' . pack('n', 0))
  . pg_message('D', "P\0")
  . pg_message('E', "\0" . pack('N', 0))
  . pg_message('S');
@m = msgs_until($s, 'Z');
is(join('', map { $_->[0] } @m), '2TDCZ', 'Bind/Describe/Execute/Sync answered in order');
my ($row) = grep { $_->[0] eq 'D' } @m;
like($row->[1] // '', qr/42$/, 'parameter bound, result 42');

# Function call message.
my $oid = $node->safe_psql('postgres', "SELECT 'pg_backend_pid'::regproc::oid");
my $pid = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE query LIKE 'SELECT \$1::int%'");
print $s pg_message('F', pack('N n n n', $oid, 0, 0, 0));
@m = msgs_until($s, 'Z');
is(join('', map { $_->[0] } @m), 'VZ', 'FunctionCall answered with FunctionCallResponse');
my ($v) = grep { $_->[0] eq 'V' } @m;
is(defined $v ? substr($v->[1], 4) : undef, $pid, 'function ran on this session\'s server');

# A client that vanishes mid-transaction: its server goes, its locks with it.
print $s pg_message('Q', "BEGIN; LOCK TABLE locked; SELECT 'locked'\0");
@m = msgs_until($s, 'Z');
is($m[-1][0], 'Z', 'lock taken');
close $s;    # no Terminate
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM pg_locks WHERE relation = 'locked'::regclass"),
	'lock released after the client vanished');
is($pw->safe_psql("BEGIN; LOCK TABLE locked NOWAIT; COMMIT; SELECT 'free'"),
	'free', 'table free for others');

$pw->stop;
done_testing();
