# A session that moves to another server keeps the identity it runs as, as
# Postgres keeps it: RESET ALL leaves SET ROLE and SET SESSION AUTHORIZATION
# alone, and SESSION AUTHORIZATION ends a SET ROLE. A move that dropped them
# would run the session with the login role's privileges (a superuser here).
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;

my $node = new_node('primary');
$node->safe_psql('postgres',
	'CREATE ROLE low NOLOGIN; CREATE ROLE a NOLOGIN; CREATE ROLE b NOLOGIN; GRANT b TO a');
my $pw = PgWing::Test->new(
	backends  => [ [ primary => $node ] ],
	auth_type => 'trust',
	settings  => { server_idle_timeout => '1s' });
$pw->start;

my $bg = $pw->background_psql(application_name => 'identity');
my $login = $bg->query_safe('SELECT session_user');

# Idle past server_idle_timeout: the server is released. Its backend is
# then ended while pooled, so the next statement runs on another backend,
# rebuilt from what the session did.
sub moved
{
	my ($what) = @_;
	my $pid = $bg->query_safe('SELECT pg_backend_pid()');
	ok( wait_until(
			sub {
				!grep { $_->{application_name} eq 'identity' && $_->{link} ne '' }
				  @{ $pw->admin_rows('SHOW CLIENTS') };
			}),
		"$what: the idle session gave its server back");
	$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid, 10000)");
	isnt($bg->query_safe('SELECT pg_backend_pid()'), $pid, "$what: the session moved");
	return;
}

$bg->query_safe("SET ROLE low; SET work_mem = '3MB'; RESET ALL");
moved('SET ROLE, RESET ALL');
is($bg->query_safe('SELECT current_user'), 'low', 'RESET ALL kept the role across the move');
is($bg->query_safe('SHOW work_mem'), '4MB', 'RESET ALL reset work_mem across the move');

$bg->query_safe('RESET ROLE; SET SESSION AUTHORIZATION a; SET ROLE b; RESET ALL');
moved('SESSION AUTHORIZATION, SET ROLE, RESET ALL');
is($bg->query_safe("SELECT current_user || ',' || session_user"),
	'b,a', 'RESET ALL kept session authorization and role across the move');

$bg->query_safe(
	'RESET SESSION AUTHORIZATION; SET SESSION AUTHORIZATION a; SET ROLE b; RESET SESSION AUTHORIZATION');
moved('RESET SESSION AUTHORIZATION');
is($bg->query_safe("SELECT current_user || ',' || session_user"),
	"$login,$login", 'RESET SESSION AUTHORIZATION ended the role too, across the move');

$bg->query_safe('SET ROLE b; SET SESSION AUTHORIZATION a');
moved('SET ROLE, SET SESSION AUTHORIZATION');
is($bg->query_safe("SELECT current_user || ',' || session_user"),
	'a,a', 'SET SESSION AUTHORIZATION ended the earlier role, across the move');

$bg->quit;
$pw->stop;
done_testing();
