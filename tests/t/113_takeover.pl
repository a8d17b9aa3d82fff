# pgwing --takeover: a new process takes the listening sockets and the idle
# clients over from the running one, which exits; no client notices.
#
# - pgbench -S in simple, extended and prepared modes (4 clients each), with
#   the takeover started in the middle of the runs: no failed transaction,
#   every pgbench exits 0 (pgbench has no retries by default: a dropped
#   connection aborts its client and fails the run);
# - an idle psql session keeps its SET and its PREPAREd statement;
# - the old process exits 0; the new one's SHOW CLIENTS and SHOW POOLS list
#   the clients, and the pidfile names it.
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;
use Time::HiRes qw(sleep time);

my $started = time;
my $node = new_node('primary');
my ($iout, $ierr) = ('', '');
IPC::Run::run([ 'pgbench', '-i', '-q', '-s', '1', '-h', $node->host, '-p', $node->port,
		'postgres' ], '>', \$iout, '2>', \$ierr)
  or die "pgbench -i: $ierr";

my $sockdir = PostgreSQL::Test::Utils::tempdir_short();
my %settings = (
	unix_socket_dir => $sockdir,
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

# An idle session with state that a fresh server would not have.
my $psql = $old->background_psql;
$psql->query_safe("SET work_mem = '7MB'");
$psql->query_safe('PREPARE twice(int) AS SELECT $1 * 2');

my @runs;
for my $mode (qw(simple extended prepared))
{
	my $run = { mode => $mode, out => '', err => '' };
	my @cmd = ('pgbench', '-n', '-S', '-M', $mode, '-c', '4', '-j', '2', '-T',
		int(time_bound(4) + 0.5), $old->connstr);
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
sleep 0.05 while pool_clients($old) < 13 && time < $deadline;
is(pool_clients($old), 13, 'the 12 pgbench clients and psql run through the old process');
sleep 0.3;

my $takeover_at = time;
$new->start(args => ['--takeover']);
$deadline = time + time_bound(15);
sleep 0.05 while $old->alive && time < $deadline;
ok(!$old->alive, 'the old process exits once its clients are handed over');
is($old->exit_status, 0, '... with exit code 0');
note sprintf('takeover to old exit: %.2f s', time - $takeover_at);
ok($new->alive, 'the new process runs');

is(pool_clients($new), 13, 'SHOW CLIENTS on the new process lists them all');
my ($pool) = grep { $_->{database} eq 'postgres' && $_->{target} eq 'rw' }
  @{ $new->admin_rows('SHOW POOLS') };
cmp_ok($pool->{cl_active} // 0, '>=', 13,
	'SHOW POOLS on the new process counts them and the psql session');

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

is($psql->query_safe('SHOW work_mem'), '7MB', 'the idle psql session keeps its SET');
is($psql->query_safe('EXECUTE twice(21)'), '42', '... and its prepared statement');
$psql->quit;

open my $fh, '<', "$sockdir/pgwing.pid" or die "pidfile: $!";
my $pid = <$fh>;
close $fh;
chomp $pid;
is($pid, $new->pid, 'the pidfile names the new process');
ok($new->log_contains(qr/taken over/), 'the new process logs the clients it took over');
is($new->safe_psql('SELECT 1'), '1', 'new clients are served by the new process');

note sprintf('wall time: %.1f s', time - $started);
done_testing();
