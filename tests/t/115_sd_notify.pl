# sd_notify (Type=notify under systemd): pgwing tells the NOTIFY_SOCKET of its
# environment READY=1 once its ports accept (never when it could not listen),
# RELOADING=1 then READY=1 around a reload, and STOPPING=1 when it stops. The
# test plays systemd: a unix datagram socket it reads.
use strict;
use warnings;
use IO::Select;
use IO::Socket::INET;
use IO::Socket::UNIX;
use Socket qw(SOCK_DGRAM);
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;

# Built without libsystemd (an optional dependency), pgwing says nothing; CI
# builds with it, so there the test must run.
if (qx{ldd '${\ pgwing_bin()}' 2>/dev/null} !~ /libsystemd/ && ($ENV{CI} // '') ne 'true')
{
	plan skip_all => 'pgwing was built without libsystemd (apt-get install libsystemd-dev)';
}

my $node = new_node('primary');
my $path = "$PostgreSQL::Test::Utils::tmp_check/115_notify.sock";
unlink $path;
my $notify = IO::Socket::UNIX->new(Type => SOCK_DGRAM, Local => $path)
  or die "notify socket $path: $!";

# The next datagram, or undef after $timeout seconds.
sub next_notify
{
	my ($timeout) = @_;
	return undef unless IO::Select->new($notify)->can_read(time_bound($timeout // 10));
	my $msg;
	$notify->recv($msg, 4096);
	return $msg;
}

sub accepts
{
	my ($port) = @_;
	my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp');
	return $s ? 1 : 0;
}

# A port already taken: pgwing cannot listen, exits, and never says READY.
my $taken = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 1,
	Proto => 'tcp') or die "listen: $!";
my $bad = PgWing::Test->new(
	name     => 'bad',
	backends => [ [ primary => $node ] ],
	rw_port  => $taken->sockport,
	env      => { NOTIFY_SOCKET => $path });
ok(!$bad->start(fail_ok => 1, timeout => 5), 'pgwing cannot start on a taken port');
my $early = next_notify(1);
ok(!defined $early || $early !~ /READY=1/, 'and never said READY=1')
  or diag "got: $early";
close $taken;

my $pw = PgWing::Test->new(
	backends => [ [ primary => $node ] ],
	env      => { NOTIFY_SOCKET => $path });
$pw->start;
my $msg = next_notify();
like($msg // '', qr/^READY=1$/m, 'READY=1 after start');
ok(accepts($pw->rw_port) && accepts($pw->ro_port), 'when READY=1 came, both ports accept');
is($pw->safe_psql('SELECT 1'), '1', 'and clients are served');

$pw->signal('HUP');
$msg = next_notify();
like($msg // '', qr/^RELOADING=1$/m, 'SIGHUP: RELOADING=1 first');
like($msg // '', qr/^MONOTONIC_USEC=\d+$/m, 'with the time of the reload, as systemd asks');
$msg = next_notify();
like($msg // '', qr/^READY=1$/m, 'then READY=1 when the reload is done');

# A reload that fails keeps the old config and must still end with READY=1,
# or systemd would think pgwing is reloading forever.
open my $fh, '>>', $pw->config_file or die;
print $fh "\nno_such_setting = 1\n";
close $fh;
$pw->signal('HUP');
like(next_notify() // '', qr/^RELOADING=1$/m, 'failed reload: RELOADING=1');
like(next_notify() // '', qr/^READY=1$/m, 'failed reload: READY=1 again');
is($pw->safe_psql('SELECT 2'), '2', 'still serving after the failed reload');

$pw->stop(signal => 'TERM');
like(next_notify() // '', qr/^STOPPING=1$/m, 'SIGTERM: STOPPING=1');
is(next_notify(1), undef, 'nothing after STOPPING=1');

unlink $path;
done_testing();
