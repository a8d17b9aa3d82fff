# A second pgwing on the ports or the unix sockets of a running one refuses to
# start (a clear message, a non-zero exit) and leaves the running one whole:
# its clients all reach it, its unix sockets stay. Sharing the TCP ports is for
# processes that each set so_reuseport. A unix socket's lock file
# (.s.PGSQL.<port>.lock, the pid, as Postgres writes it) says whose it is; one
# left by a dead process is replaced.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;
use Time::HiRes qw(sleep);

my $node = new_node('primary');
my $sockdir = PostgreSQL::Test::Utils::tempdir_short;
my %admin = (dbname => 'pgwing', user => 'admin', password => 'adminpw');

# The running one: trust, so a second one's md5 would be told apart.
my $a = PgWing::Test->new(
	name      => 'a',
	backends  => [ [ primary => $node ] ],
	auth_type => 'trust',
	settings  => { unix_socket_dir => $sockdir });
$a->start;
my ($rw, $ro) = ($a->rw_port, $a->ro_port);
my $lock = "$sockdir/.s.PGSQL.$rw.lock";
# start() returns once the TCP ports answer; the unix sockets follow.
ok(wait_until(sub { -S "$sockdir/.s.PGSQL.$rw" }, 10), 'the unix socket exists');
is(-f $lock ? slurp_file($lock) : '', $a->pid . "\n", 'its lock file holds the pid');

# Every client reaches the running one (trust); a wrong password never matters.
sub all_reach_a
{
	my ($what) = @_;
	my $ok = 0;
	for (1 .. 20)
	{
		$ok++ if $a->psql('SELECT 1', password => 'wrong') == 0;
	}
	is($ok, 20, "$what: every client reaches the running pgwing");
	for my $port ($rw, $ro)
	{
		my ($rc, $out, $err) = $a->psql('SELECT 1', extra => "host=$sockdir port=$port");
		is($out, '1', "$what: its unix socket for port $port still serves") or diag $err;
	}
	is(-f $lock ? slurp_file($lock) : '', $a->pid . "\n", "$what: its lock file is untouched");
}

# Another configuration on the same ports: md5, other users.
my $b = PgWing::Test->new(
	name      => 'b',
	backends  => [ [ primary => $node ] ],
	auth_type => 'md5',
	users     => { admin => 'adminpw' },
	rw_port   => $rw,
	ro_port   => $ro,
	settings  => { unix_socket_dir => $sockdir });
$b->write_config;
my ($rc, $out, $err) = run_pgwing($b->config_file);
is($rc, 1, 'a second pgwing on the same ports exits with code 1');
like($err, qr/could not listen on 127\.0\.0\.1:$rw: Address already in use: another process holds the port/,
	'it says the port is held');
all_reach_a('second start on the same ports');

# The same unix sockets, other TCP addresses: the sockets are not deleted.
$b->set(listen_addr => '127.0.0.2');
$b->write_config;
($rc, $out, $err) = run_pgwing($b->config_file);
is($rc, 1, 'a second pgwing on the same unix sockets exits with code 1');
like($err, qr/unix socket \Q$sockdir\E\/\.s\.PGSQL\.$rw is in use by process ${\ $a->pid } \(lock file \Q$lock\E\)/,
	'it names the socket, the process holding it and the lock file');
all_reach_a('second start on the same unix sockets');

# Asking to share does not share with one that did not ask.
$b->set(listen_addr => '127.0.0.1', unix_socket_dir => '', so_reuseport => 'on');
$b->write_config;
($rc, $out, $err) = run_pgwing($b->config_file);
is($rc, 1, 'so_reuseport = on does not join a process that did not set it');
all_reach_a('second start with so_reuseport');

# A lock left by a process that is gone (kill -9) is replaced.
$a->kill9;
ok(-e $lock, 'kill -9 leaves the lock file');
$a->start;
# start() returns once the TCP ports answer; the unix sockets follow.
ok(wait_until(sub { -e $lock && slurp_file($lock) eq $a->pid . "\n" }, 10),
	'the restarted pgwing replaced the stale lock');
ok($a->log_contains(qr/removing stale lock file \Q$lock\E/), 'and said so');
my ($rc2, $out2, $err2) = $a->psql('SELECT 1', extra => "host=$sockdir port=$rw");
is($out2, '1', 'its unix socket serves') or diag $err2;
$a->stop;
ok(!-e $lock && !-e "$sockdir/.s.PGSQL.$rw", 'a clean stop removes the socket and its lock');

# Processes that each set so_reuseport share the ports.
my @shared = map {
	PgWing::Test->new(
		name      => "shared$_",
		backends  => [ [ primary => $node ] ],
		auth_type => 'trust',
		rw_port   => $rw,
		ro_port   => $ro,
		settings  => { so_reuseport => 'on' })
} 1 .. 2;
$_->start for @shared;
# start returns as soon as the port answers, which the first already does.
ok($shared[1]->wait_for_log(qr/pgwing \S+ started/), 'the second starts on the shared ports');
ok($shared[0]->alive && $shared[1]->alive, 'two pgwing with so_reuseport = on both run');
my %seen;
for (1 .. 40)
{
	$seen{ $shared[0]->psql('SELECT 1') == 0 ? 'ok' : 'failed' }++;
}
is($seen{ok}, 40, 'clients of the shared port are served');
$_->stop for @shared;

# Daemon mode: the lock names the daemon, not the parent that exited.
my $d = PgWing::Test->new(
	name      => 'daemon',
	backends  => [ [ primary => $node ] ],
	auth_type => 'trust',
	settings  => { unix_socket_dir => $sockdir });
my $pidfile = $d->dir . '/pgwing.pid';
$d->set(pidfile => $pidfile, logfile => $d->dir . '/pgwing.log');
$d->write_config;
($rc, $out, $err) = run_pgwing('-d', $d->config_file);
is($rc, 0, 'pgwing -d returns 0') or diag $err;
my $dlock = "$sockdir/.s.PGSQL." . $d->rw_port . '.lock';
for (1 .. 100)
{
	last if -s $pidfile;
	sleep 0.1;
}
my $pid = -s $pidfile ? slurp_file($pidfile) : 'none';
is(-f $dlock ? slurp_file($dlock) : '', $pid, "the lock file holds the daemon's pid");
chomp $pid;
kill 'TERM', $pid if $pid =~ /^\d+$/;
for (1 .. 100)
{
	last unless -e $dlock;
	sleep 0.1;
}
ok(!-e $dlock, 'the daemon removes its lock at stop');

done_testing();
