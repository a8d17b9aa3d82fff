# server_idle_timeout counts from a session's last activity, and a session
# that has sent nothing since it logged in has been idle since then: its
# server stays for server_idle_timeout, then goes, and comes back when the
# client speaks.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;
use Time::HiRes qw(time sleep);

my $idle_s = 6;    # checked every quarter of it
my $node = new_node('primary');
my $pw = PgWing::Test->new(backends => [ [ primary => $node ] ], auth_type => 'trust',
	settings => { server_idle_timeout => "${idle_s}s" });
$pw->start;

sub server_pid
{
	return $node->safe_psql('postgres',
		"SELECT string_agg(pid::text, ',') FROM pg_stat_activity "
		  . "WHERE application_name = 'fresh'");
}

my $t0 = time;
my $psql = $pw->background_psql(application_name => 'fresh');
my $pid = server_pid();
like($pid, qr/^\d+$/, 'a fresh session has its server');
sleep $idle_s / 2;
my $elapsed = time - $t0;
is(server_pid(), $pid, sprintf('it keeps it while idle for %.1f s of %d', $elapsed, $idle_s));
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name = 'fresh'"),
	'and lets it go after server_idle_timeout');
cmp_ok(time - $t0, '>=', $idle_s - 0.5, 'not before');
is($psql->query_safe('SELECT 1'), '1', 'the client gets a server back when it speaks');
$psql->quit;
$pw->stop;
done_testing();
