# pgwing --takeover: a new process takes the listening sockets and the idle
# clients over from the running one, which exits; no client notices.
#
# - pgbench -S in simple, extended and prepared modes (4 clients each), with
#   the takeover started in the middle of the runs: no failed transaction,
#   every pgbench exits 0 (pgbench has no retries by default: a dropped
#   connection aborts its client and fails the run);
# - an idle psql session on the unix socket keeps its SET and its PREPAREd
#   statement;
# - a client in a transaction block at the takeover commits it in the old
#   process and moves at that idle point;
# - a session pinned by a temporary table can't move: it drains (57P01);
# - the old process exits 0; the new one's SHOW CLIENTS and SHOW POOLS list
#   the clients, and the pidfile names it;
# - before that: --takeover with no pgwing to take over exits 1; a new
#   process that fails after receiving the sockets, and garbage on the
#   control socket, leave the running one as it was.
use strict;
use warnings;
use IO::Socket::UNIX;
use IPC::Run;
use Socket qw(SOCK_SEQPACKET);
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;
use Time::HiRes qw(sleep time);

my $started = time;
my $node = new_node('primary');
my ($iout, $ierr) = ('', '');
IPC::Run::run([ 'pgbench', '-i', '-q', '-I', 'dtgp', '-s', '1', '-h', $node->host, '-p', $node->port,
		'postgres' ], '>', \$iout, '2>', \$ierr)
  or die "pgbench -i: $ierr";

my $sockdir = PostgreSQL::Test::Utils::tempdir_short();
my $metrics_port = PostgreSQL::Test::Cluster::get_free_port();
my %settings = (
	unix_socket_dir => $sockdir,
	metrics_listen  => "127.0.0.1:$metrics_port",
	pidfile         => "$sockdir/pgwing.pid",
	# Clients that cannot move would get 57P01 at once; every one here can.
	shutdown_grace => '0',
	health_interval => '200ms');
my $old = start_pgwing_with(
	backends => [ [ pg1 => $node ] ],
	settings => {%settings},
	up       => [ pg1 => 'primary' ]);
my $new = PgWing::Test->new(
	name     => 'new',
	backends => [ [ pg1 => $node ] ],
	settings => {%settings},
	rw_port  => $old->rw_port,
	ro_port  => $old->ro_port);

sub read_file_line
{
	my ($path) = @_;
	open my $fh, '<', $path or return '';
	my $line = <$fh> // '';
	close $fh;
	chomp $line;
	return $line;
}

sub wait_exit
{
	my ($pw, $seconds) = @_;
	my $deadline = time + time_bound($seconds);
	sleep 0.05 while $pw->alive && time < $deadline;
	return !$pw->alive;
}

# Nothing to take over: a clear error, exit code 1.
my $lonely = PgWing::Test->new(
	name     => 'lonely',
	backends => [ [ pg1 => $node ] ],
	settings => { unix_socket_dir => PostgreSQL::Test::Utils::tempdir_short() });
ok(!$lonely->start(args => ['--takeover'], fail_ok => 1), '--takeover with nothing running fails');
is($lonely->exit_status >> 8, 1, '... with exit code 1');
ok($lonely->log_contains(qr/could not connect to the running pgwing/), '... saying why');

# Garbage on the control socket: refused, logged, and the running one goes on.
my $control = "$sockdir/.s.PGSQL." . $old->rw_port . '.takeover';
for my $garbage ("X\0\0", "H\0\0\0\x{63}", '')
{
	my $s = IO::Socket::UNIX->new(Type => SOCK_SEQPACKET, Peer => $control)
	  or die "connect $control: $!";
	syswrite($s, $garbage) if $garbage ne '';
	shutdown($s, 1);
	my $answer = '';
	sysread($s, $answer, 1000);
	close $s;
}
ok($old->wait_for_log(qr/unexpected message on the control socket/),
	'garbage on the control socket is refused');

# A new process that fails after it got the sockets (it can't write its
# pidfile): it exits 1, and the running one keeps its sockets and files.
my $bad = PgWing::Test->new(
	name     => 'bad',
	backends => [ [ pg1 => $node ] ],
	settings => { %settings, pidfile => "$sockdir/no/such/dir/pgwing.pid" },
	rw_port  => $old->rw_port,
	ro_port  => $old->ro_port);
$bad->start(args => ['--takeover'], fail_ok => 1);
ok(wait_exit($bad, 10), 'a new process that fails to start exits');
is($bad->exit_status >> 8, 1, '... with exit code 1');
ok($bad->log_contains(qr/listening on the 4 sockets of the running pgwing/),
	'... after it had received the sockets');
ok($old->alive, 'the running process goes on');
is($old->safe_psql('SELECT 1'), '1', '... serving on its TCP port');
is($old->safe_psql('SELECT 2', extra => "host=$sockdir"), '2', '... and its unix socket');
is(($old->http_get('/livez'))[0], 200, '... and its metrics port');
is(read_file_line("$sockdir/pgwing.pid"), $old->pid, '... and its pidfile names it');
is(read_file_line("$sockdir/.s.PGSQL." . $old->rw_port . '.lock'), $old->pid,
	'... and so does its socket\'s lock file');

sub run_query
{
	my ($sock, $sql) = @_;
	print $sock pg_message('Q', "$sql\0");
	my $types = '';
	while (1)
	{
		my ($t) = read_message($sock, 10);
		$types .= $t // '(none)';
		last if !defined $t || $t eq 'Z';
	}
	return $types;
}

# A client in a transaction block when the takeover begins.
$node->safe_psql('postgres', 'CREATE TABLE moved (n int)');
my $in_xact = $old->raw_connect;
ok(raw_login($in_xact, user => os_user())->{ok}, 'a client logs in');
is(run_query($in_xact, 'BEGIN; INSERT INTO moved VALUES (1)'), 'CCZ', '... and opens a transaction');

# A session pinned by a temporary table: it can't move, so it drains.
my $pinned = $old->raw_connect;
ok(raw_login($pinned, user => os_user())->{ok}, 'a client logs in');
is(run_query($pinned, 'CREATE TEMP TABLE t (n int)'), 'CZ',
	'... and pins its session with a temporary table');

# An idle session (on the unix socket) with state that a fresh server would not have.
my $psql = $old->background_psql(extra => "host=$sockdir");
$psql->query_safe("SET work_mem = '7MB'");
$psql->query_safe('PREPARE twice(int) AS SELECT $1 * 2');

my @runs;
for my $mode (qw(simple extended prepared))
{
	my $run = { mode => $mode, out => '', err => '' };
	my @cmd = ('pgbench', '-n', '-S', '-M', $mode, '-c', '4', '-j', '2', '-T',
		int(time_bound(6) + 0.5), $old->connstr);
	$run->{h} = IPC::Run::start(\@cmd, '>', \$run->{out}, '2>', \$run->{err});
	push @runs, $run;
}

# The clients of database postgres: pgbench's and the psql session.
sub pool_clients
{
	my ($pw) = @_;
	my $rows = eval { $pw->admin_rows('SHOW CLIENTS') } // [];
	return scalar grep { $_->{database} eq 'postgres' } @$rows;
}

# Mid-run: every pgbench client is connected and running.
my $deadline = time + time_bound(10);
sleep 0.1 while pool_clients($old) < 15 && time < $deadline;
is(pool_clients($old), 15, 'the 12 pgbench clients, psql, the one in a transaction and the pinned one run through the old process');
# A loaded machine may take long to get here: what follows needs pgbench running.
is(scalar(grep { $_->{h}->pumpable } @runs), 3, 'every pgbench still runs at the takeover');

my $takeover_at = time;
$new->start(args => ['--takeover']);
# Until the old process has heard that the new one listens, both accept.
ok($old->wait_for_log(qr/the new process listens/), 'the old process stops accepting');
is(run_query($in_xact, 'COMMIT'), 'CZ', 'the client in a transaction commits it');
# While pgbench still runs: its clients and psql are the new process's now.
$deadline = time + time_bound(10);
sleep 0.1 while pool_clients($new) < 14 && time < $deadline;
is(pool_clients($new), 14, 'SHOW CLIENTS on the new process lists the 14 clients that moved')
  or diag explain $new->admin_rows('SHOW CLIENTS');
ok(wait_exit($old, 15), 'the old process exits once its clients are handed over');
is($old->exit_status, 0, '... with exit code 0');
note sprintf('takeover to old exit: %.2f s', time - $takeover_at);
ok($new->alive, 'the new process runs');

for my $run (@runs)
{
	$run->{h}->finish;
	my $status = $run->{h}->result(0);
	my ($processed) = $run->{out} =~ /number of transactions actually processed: (\d+)/;
	my ($failed)    = $run->{out} =~ /number of failed transactions: (\d+)/;
	is($status, 0, "pgbench -M $run->{mode}: exit status 0")
	  or diag "stdout:\n$run->{out}\nstderr:\n$run->{err}";
	is($failed, 0, "pgbench -M $run->{mode}: 0 failed transactions");
	cmp_ok($processed // 0, '>', 0, "pgbench -M $run->{mode}: transactions processed");
}

my ($t, $b) = read_message($pinned, 10);
is($t, 'E', 'the pinned session was told before the old process exited');
is(defined $t && $t eq 'E' ? error_fields($b)->{C} : undef, '57P01', '... with 57P01');

is(run_query($in_xact, 'SELECT 1'), 'TDCZ', 'the client that committed goes on in the new process');
is($node->safe_psql('postgres', 'SELECT count(*) FROM moved'), '1', '... and its transaction committed');

is($psql->query_safe('SHOW work_mem'), '7MB', 'the idle psql session keeps its SET');
is($psql->query_safe('EXECUTE twice(21)'), '42', '... and its prepared statement');
my ($pool) = grep { $_->{database} eq 'postgres' && $_->{target} eq 'rw' }
  @{ $new->admin_rows('SHOW POOLS') };
is($pool->{cl_active}, 2, 'SHOW POOLS on the new process counts the two that stay, pgbench gone');
$psql->quit;

is(read_file_line("$sockdir/pgwing.pid"), $new->pid, 'the pidfile names the new process');
is(read_file_line("$sockdir/.s.PGSQL." . $old->rw_port . '.lock'), $new->pid,
	'... and so does the unix socket\'s lock file');
ok($new->log_contains(qr/taken over/), 'the new process logs the clients it took over');
is($new->safe_psql('SELECT 1'), '1', 'new clients are served by the new process');
my ($status, $body) = $new->http_get('/readyz');
is($status, 200, 'the metrics port (handed over) answers from the new process: /readyz 200');

note sprintf('wall time: %.1f s', time - $started);
done_testing();
