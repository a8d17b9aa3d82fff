# server_release = always: a session gives its server back at every idle
# point, so each transaction may run on another server connection, and its
# state (settings, prepared statements) comes along; a transaction keeps its
# server to its end, and a session with state that cannot move (a temporary
# table) keeps its server. The forced-move regression run relies on this.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;

my $node = new_node('primary');
my $pw = PgWing::Test->new(
	backends  => [ [ primary => $node ] ],
	auth_type => 'trust',
	settings  => { server_release => 'always' });
$pw->start;

my $bg = $pw->background_psql(application_name => 'always');

# The client's row in SHOW CLIENTS: its link is the server it holds, '' for none.
sub link_of
{
	my ($row) = grep { $_->{application_name} eq 'always' } @{ $pw->admin_rows('SHOW CLIENTS') };
	return $row->{link};
}

sub holds_no_server { return wait_until(sub { link_of() eq '' }, 10); }

$bg->query_safe("SET work_mem = '5MB'; PREPARE p AS SELECT 41 + 1");
my $pid = $bg->query_safe('SELECT pg_backend_pid()');
ok(holds_no_server(), 'the session gave its server back right after its statement');

# Its backend ends while pooled: the next statement runs on another one.
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid, 10000)");
isnt($bg->query_safe('SELECT pg_backend_pid()'), $pid, 'the next statement ran on another backend');
is($bg->query_safe('SHOW work_mem'), '5MB', 'the setting came along');
is($bg->query_safe('EXECUTE p'), '42', 'the prepared statement came along');

# A custom setting stays defined, empty, after its RESET (the regression suite's
# guc test): the next backend must know it too.
$bg->query_safe("SET custom.my_guc = 'foo'");
$bg->query_safe('RESET custom.my_guc');
$pid = $bg->query_safe('SELECT pg_backend_pid()');
ok(holds_no_server(), 'given back after the RESET');
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid, 10000)");
is($bg->query_safe("SELECT coalesce(current_setting('custom.my_guc', true), 'unknown')"),
	'', 'a RESET custom setting is still known, empty, on the next backend');
# RESET ALL leaves custom names defined, empty, too; other settings go back to
# their defaults.
$bg->query_safe("SET custom.other = 'bar'; SET work_mem = '6MB'");
$bg->query_safe('RESET ALL');
$pid = $bg->query_safe('SELECT pg_backend_pid()');
ok(holds_no_server(), 'given back after RESET ALL');
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid, 10000)");
is( $bg->query_safe(
		"SELECT coalesce(current_setting('custom.other', true), 'unknown') || '|' || current_setting('work_mem')"
	),
	'|4MB',
	'after RESET ALL a custom setting is still known, empty, on the next backend; work_mem is back'
);

$bg->query_safe('BEGIN');
my $in_xact = $bg->query_safe('SELECT pg_backend_pid()');
isnt(link_of(), '', 'a transaction keeps its server between its statements');
is($bg->query_safe('SELECT pg_backend_pid()'), $in_xact, 'and runs on one backend');
$bg->query_safe('COMMIT');
ok(holds_no_server(), 'given back when the transaction ends');

$bg->query_safe('CREATE TEMP TABLE t (x int)');
$bg->query_safe('SELECT 1');
isnt(link_of(), '', 'a session with a temporary table keeps its server');

$bg->quit;
$pw->stop;
done_testing();
