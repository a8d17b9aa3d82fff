# Scale to zero with wake=http: pgwing POSTs to a wake endpoint (here a small
# HTTP::Daemon started by the test, which checks the bearer token and starts
# the backend), with the token from wake_auth_env.
#
# - 20 concurrent clients: one request, all get rows; the token is not logged.
# - A wrong token: the 401 is logged, the clients get 08006 at wake_timeout.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;
use IPC::Run;
use HTTP::Daemon;
use HTTP::Response;
use Time::HiRes qw(time);

# Long, as cloud API tokens are.
my $token    = 'sekrit-wake-token-' . ('x' x 2000);
my $requests = "$PostgreSQL::Test::Utils::tmp_check/071_requests.txt";
unlink $requests;    # tmp_check outlives a run: count this run's requests only

my $node = new_node('pg1');
my $dud  = new_node('pg2');
my %datadir = (pg1 => $node->data_dir, pg2 => $dud->data_dir);
my %pglog   = (pg1 => $node->logfile,  pg2 => $dud->logfile);
$node->stop;
$dud->stop;

# POST /start/<name> with the right token starts that node (and answers at once, as a
# cloud API would); anything else is 401. Every request is counted.
my $daemon = HTTP::Daemon->new(LocalAddr => '127.0.0.1', LocalPort => 0, ReuseAddr => 1)
  or die "HTTP::Daemon: $!";
my $http_port = $daemon->sockport;
my $server_pid = fork // die "fork: $!";
if ($server_pid == 0)
{
	while (my $c = $daemon->accept)
	{
		while (my $r = $c->get_request)
		{
			my $auth = $r->header('Authorization') // '';
			open my $log, '>>', $requests or die;
			print $log $r->method . ' ' . $r->uri->path . "\n";
			close $log;
			if (   $r->method eq 'POST'
				&& $r->uri->path =~ m{^/start/(pg[12])$}
				&& $auth eq "Bearer $token")
			{
				system("pg_ctl -D '$datadir{$1}' -l '$pglog{$1}' start >/dev/null 2>&1 &");
				$c->send_response(HTTP::Response->new(202, 'Accepted'));
			}
			else
			{
				$c->send_response(HTTP::Response->new(401, 'Unauthorized'));
			}
		}
		$c->close;
	}
	exit 0;
}
END { kill 'TERM', $server_pid if $server_pid; }

sub count_requests
{
	open my $in, '<', $requests or return 0;
	my @l = <$in>;
	return scalar @l;
}

sub wake_line
{
	my ($name) = @_;
	return (wake => "http:\"POST http://127.0.0.1:$http_port/start/$name\"",
		wake_auth_env => 'WAKE_TOKEN');
}

my $pw = PgWing::Test->new(
	backends => [ [ pg1 => $node, wake_line('pg1') ] ],
	env      => { WAKE_TOKEN => $token },
	settings => { health_interval => '200ms', health_fail_count => 1, wake_timeout => '30s' });
$pw->start;
ok($pw->wait_for_log(qr/backend pg1: unknown -> asleep/), 'asleep');

is($pw->psql_concurrently(20), 20, 'all 20 clients got their rows');
is(count_requests(), 1, 'one wake request for 20 clients');
ok($pw->log_contains(qr/backend pg1: wake request accepted \(HTTP 202\)/), 'the 202 is logged');
ok(!$pw->log_contains(qr/\Q$token\E/), 'the token is not logged');
$pw->stop;

# A wrong token: refused, logged, and the clients get 08006 at wake_timeout.
my $pw2 = PgWing::Test->new(
	name     => 'badtoken',
	backends => [ [ pg2 => $dud, wake_line('pg2') ] ],
	env      => { WAKE_TOKEN => 'wrong' },
	settings => { health_interval => '200ms', health_fail_count => 1, wake_timeout => '2s' });
$pw2->start;
ok($pw2->wait_for_log(qr/backend pg2: unknown -> asleep/), 'bad token: asleep');
my $t0 = time();
my ($rc, $out, $err) = $pw2->psql('SELECT 1');
my $elapsed = time() - $t0;
isnt($rc, 0, 'bad token: the query fails');
like($err, qr/backend pg2 did not wake within 2 s/, 'bad token: the client is told');
cmp_ok($elapsed, '>=', 2, 'bad token: not before wake_timeout');
ok($pw2->log_contains(qr/backend pg2: wake request refused: HTTP 401/), 'bad token: the 401 is logged');
ok(!$pw2->log_contains(qr/wrong/), 'bad token: the token is not logged');
$pw2->stop;

system('pg_ctl', '-D', $datadir{pg1}, '-m', 'fast', 'stop');
done_testing();
