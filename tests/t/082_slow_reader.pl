# A client that stops reading while a large result streams: pgwing stops
# reading from that server (the backend waits in ClientWrite), its memory stays
# flat while the query could produce 200 MB, other clients are served
# meanwhile, and when the client reads again the whole result arrives.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;
use Time::HiRes qw(time sleep);

my $rows     = 100_000;
my $row_size = 2000;    # 200 MB in all

my $node = new_node('primary');
my $pw = PgWing::Test->new(backends => [ [ primary => $node ] ], auth_type => 'trust');
$pw->start;


# Warm up: a session and a small query, so the baseline has the pool.
is($pw->safe_psql('SELECT 1'), '1', 'warm-up');
my $rss0 = $pw->rss_kb;

my $s = $pw->raw_connect;
my $login = raw_login($s, params => { application_name => 'slowreader' });
ok($login->{ok}, 'slow reader logged in') or die 'login failed: ' . explain($login);
syswrite($s, pg_message('Q', "SELECT repeat('x', $row_size) FROM generate_series(1, $rows)\0"));

# The backend fills the socket buffers and then waits for pgwing to read.
my $blocked = $node->poll_query_until('postgres',
	"SELECT wait_event = 'ClientWrite' FROM pg_stat_activity "
	  . "WHERE application_name = 'slowreader' AND state = 'active'");
ok($blocked, 'the backend waits in ClientWrite: pgwing stopped reading from it');
sleep 2;
my $still = $node->safe_psql('postgres',
	"SELECT wait_event FROM pg_stat_activity WHERE application_name = 'slowreader'");
is($still, 'ClientWrite', 'and stays blocked while the client does not read');
my $rss1 = $pw->rss_kb;
note "pgwing RSS: $rss0 kB before, $rss1 kB with the stalled 200 MB result";
# What pgwing may hold is forward_buffer_size (256kB) plus socket-sized
# reads: well under 8 MB, against the 200 MB the query would produce.
cmp_rss($rss1 - $rss0, '<', 8 * 1024, 'pgwing memory stays bounded (< 8 MB growth)');

my $t0 = time;
is($pw->safe_psql('SELECT 42', timeout => 20), '42', 'another client is served meanwhile');
cmp_ok(time - $t0, '<', time_bound(10), 'without waiting for the slow reader');
my $other = $pw->background_psql;
is($other->query_safe("SELECT count(*) FROM generate_series(1, 1000)"), '1000',
	'an open session runs queries meanwhile');
$other->quit;

# The client reads again: the whole result arrives, intact.
my ($drows, $bytes, $t, $b) = (0, 0);
while (1)
{
	($t, $b) = read_message($s, 60);
	last if !defined $t || $t eq 'Z' || $t eq 'E';
	next unless $t eq 'D';
	$drows++;
	$bytes += length($b);
}
is($t, 'Z', 'the query completes once the client reads') or diag "got: $b";
is($drows, $rows, "all $rows rows arrive");
cmp_ok($bytes, '>', $rows * $row_size, 'all 200 MB of them');
my $rss2 = $pw->rss_kb;
note "pgwing RSS after streaming it: $rss2 kB";
cmp_rss($rss2 - $rss0, '<', 8 * 1024, 'pgwing memory still bounded after the stream');
syswrite($s, pg_message('X'));
close $s;

# The bound is forward_buffer_size (256kB by default): raised to 32 MB by a
# reload, a stalled reader costs about that much, and no more.
my $pos = $pw->log_position;
$pw->set(forward_buffer_size => '32MB');
$pw->write_config;
$pw->signal('HUP');
ok($pw->wait_for_log(qr/configuration reloaded/, $pos), 'forward_buffer_size raised to 32MB');
my $rss3 = $pw->rss_kb;
$s = $pw->raw_connect;
ok(raw_login($s, params => { application_name => 'slowreader2' })->{ok}, 'a second slow reader');
syswrite($s, pg_message('Q', "SELECT repeat('x', $row_size) FROM generate_series(1, $rows)\0"));
ok( $node->poll_query_until('postgres',
		"SELECT wait_event = 'ClientWrite' FROM pg_stat_activity "
		  . "WHERE application_name = 'slowreader2' AND state = 'active'"),
	'its backend blocks too');
sleep 2;
my $rss4 = $pw->rss_kb;
note "pgwing RSS with forward_buffer_size = 32MB: $rss3 kB before, $rss4 kB stalled";
# libevent allocates its buffer chains with room to spare (up to twice the
# data they hold), hence the upper bound.
cmp_ok($rss4 - $rss3, '>', 24 * 1024, 'pgwing buffers about forward_buffer_size for it');
cmp_ok($rss4 - $rss3, '<', 80 * 1024, 'and not much more (< 2.5 times)');
close $s;
is($pw->safe_psql('SELECT 1'), '1', 'pgwing serves after the reader vanished');

$pw->stop;
done_testing();
