# A hostile or impersonated backend chooses how pgwing logs in to it. It must
# not get the password in clear when server_require_auth refuses that, and a
# SCRAM challenge with millions of iterations must not stall the one event
# loop: neither for a health probe (libpq, which has no cap of its own) nor
# for pgwing's own server login. Meanwhile clients of the real primary are
# served and signals stop pgwing at once.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use IO::Select;
use IO::Socket::INET;
use IPC::Run;
use MIME::Base64 qw(encode_base64);
use POSIX ();
use Time::HiRes qw(time);
use Test::More;


my $primary = new_node('primary');
create_role($primary, 'prober', 'probe-secret');
create_role($primary, $_, "$_-pw") for qw(alice bob);

my @fakes;
END { kill 'KILL', map { -$_ } @fakes; }

# Start a fake backend in a child process: ($port, $record_file). Each login
# is asked for $how->{user} (or $how->{'*'}): 'cleartext', or that many SCRAM
# iterations. Logins of $pass_user go through to the real primary instead.
# Every message it receives is appended to the record, one line each:
# "<user> <when> <type> <body>", when being "first" (SCRAM's initial
# response) or "after" (anything after the challenge).
sub start_fake
{
	my ($name, $how, $pass_user) = @_;
	my $port   = PostgreSQL::Test::Cluster::get_free_port();
	my $record = "$PostgreSQL::Test::Utils::tmp_check/096_$name.record";
	my $lsock  = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port,
		Listen => 128, ReuseAddr => 1) or die "listen: $!";
	open(my $touch, '>', $record) or die "$record: $!";
	close $touch;
	my $pid = fork // die "fork: $!";
	if ($pid == 0)
	{
		# Children must never run the END blocks that stop the nodes and pgwing,
		# nor hold prove's output open: one process group, killed at the END.
		setpgrp(0, 0);
		open(STDOUT, '>', '/dev/null');
		open(STDERR, '>', '/dev/null');
		local $SIG{CHLD} = 'IGNORE';
		while (my $c = $lsock->accept)
		{
			my $conn_pid = fork // next;
			if ($conn_pid == 0)
			{
				eval { fake_login($c, $record, $how, $pass_user) };
				POSIX::_exit(0);
			}
			close $c;
		}
		POSIX::_exit(0);
	}
	close $lsock;
	push @fakes, $pid;
	return ($port, $record);
}

sub note_received
{
	my ($record, $line) = @_;
	open(my $fh, '>>', $record) or die "$record: $!";
	syswrite($fh, $line =~ s/[^\x20-\x7e]/./gr . "\n");
	close $fh;
}

sub fake_login
{
	my ($c, $record, $how, $pass_user) = @_;
	my ($params, $startup) = read_startup($c);
	return unless $params;
	my $user = $params->{user} // '';
	if (defined $pass_user && $user eq $pass_user)
	{
		my $up = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
			PeerPort => $primary->port, Proto => 'tcp') or return;
		syswrite($up, $startup);
		my $sel = IO::Select->new($c, $up);
		while (1)
		{
			for my $s ($sel->can_read)
			{
				return unless sysread($s, my $buf, 65536);
				syswrite($s == $c ? $up : $c, $buf);
			}
		}
	}
	my $mode = $how->{$user} // $how->{'*'};
	if ($mode eq 'cleartext')
	{
		syswrite($c, pg_message('R', pack('N', 3)));
	}
	else
	{
		syswrite($c, pg_message('R', pack('N', 10) . "SCRAM-SHA-256\0\0"));
		my ($type, $body) = read_message($c, 60);
		return unless defined $type;
		note_received($record, "$user first $type $body");
		my ($nonce) = $body =~ /r=([^,\0]+)/ or return;
		syswrite($c,
			pg_message('R',
				pack('N', 11)
				  . "r=${nonce}hostile,s="
				  . encode_base64('0123456789abcdef', '')
				  . ",i=$mode"));
	}
	while (1)
	{
		my ($type, $body) = read_message($c, 60);
		return unless defined $type;
		note_received($record, "$user after $type $body");
	}
}

# SHOW BACKENDS as a hash by name.
sub show_backends
{
	my ($pw) = @_;
	my $out = $pw->safe_psql('SHOW BACKENDS', dbname => 'pgwing', user => 'admin');
	my %rows;
	for my $line (split /\n/, $out)
	{
		my @v = split /\|/, $line, -1;
		$rows{ $v[0] } = { state => $v[5], last_error => $v[11] };
	}
	return \%rows;
}

# 1. Health probes of two hostile backends beside the real primary: one asks
# for 30 million SCRAM iterations, the other for the password in clear.
my ($scram_port, $scram_record) = start_fake('probe_scram', { '*' => 30000000 });
my ($clear_port, $clear_record) = start_fake('probe_clear', { '*' => 'cleartext' });
my $pw = PgWing::Test->new(
	name     => 'probes',
	backends => [
		[ primary    => $primary ],
		[ fake_scram => "host=127.0.0.1 port=$scram_port" ],
		[ fake_clear => "host=127.0.0.1 port=$clear_port" ],
	],
	users    => { prober => 'probe-secret' },
	settings => {
		health_user         => 'prober',
		health_interval     => '200ms',
		health_timeout      => '2s',
		health_fail_count   => 2,
		# The primary trusts local connections: "none".
		server_require_auth => 'scram-sha-256,none',
	});
$pw->start;
ok($pw->wait_for_log(qr/backend primary: unknown -> up/), 'the real primary is probed up');
ok( $pw->wait_for_log(
		qr/backend fake_scram: .*: refused the server's login: server asked for 30000000 SCRAM iterations, more than server_scram_max_iterations \(32768\)/
	),
	'the probe refuses 30 million SCRAM iterations, and says so');
ok( $pw->wait_for_log(
		qr/backend fake_clear: .*: refused the server's login: server asked for the password in clear, which server_require_auth does not allow/
	),
	'the probe refuses a cleartext password request, and says so');
ok($pw->wait_for_log(qr/backend fake_scram: \w+ -> down/), 'the SCRAM one goes down');
ok($pw->wait_for_log(qr/backend fake_clear: \w+ -> down/), 'the cleartext one goes down');

# The fakes are probed every 200 ms all along: clients of the primary never wait for them.
my ($worst, $failures) = (0, 0);
my $until = time + 3;
while (time < $until)
{
	my $t0 = time;
	my ($rc, $out) = $pw->psql('SELECT 1', timeout => 30);
	my $took = time - $t0;
	$worst = $took if $took > $worst;
	$failures++ unless $rc == 0 && $out eq '1';
}
is($failures, 0, 'queries to the primary succeed while the fakes are probed');
# Blocked, it would be seconds per probe (30 M iterations: 7-21 s here).
cmp_ok($worst, '<', time_bound(5), 'and none waits long (the loop is not blocked)');

my $backends = show_backends($pw);
is($backends->{primary}{state},    'up',   'SHOW BACKENDS: the primary is up');
is($backends->{fake_scram}{state}, 'down', 'SHOW BACKENDS: the SCRAM fake is down');
like($backends->{fake_scram}{last_error}, qr/30000000 SCRAM iterations/,
	'SHOW BACKENDS: and why');
is($backends->{fake_clear}{state}, 'down', 'SHOW BACKENDS: the cleartext fake is down');
like($backends->{fake_clear}{last_error}, qr/password in clear/, 'SHOW BACKENDS: and why');

my $t0 = time;
$pw->stop;    # SIGINT; asserts a clean exit
cmp_ok(time - $t0, '<', time_bound(2), 'SIGINT stops pgwing at once');

my $received = slurp_file($scram_record);
like($received, qr/^prober first p /m, 'the SCRAM fake got the probe\'s initial response');
unlike($received, qr/^prober after p /m,
	'but never a proof: nothing was derived for its 30 million iterations');
unlike(slurp_file($clear_record), qr/probe-secret/, 'the cleartext fake never got the password');

# 2. pgwing's own login to a server posing as the primary: it passes the
# probes (they go through to the real primary), then asks alice for her
# password in clear and bob for 9 million SCRAM iterations (under the 10
# million pgwing took before, several seconds of the loop).
my ($pose_port, $pose_record) =
  start_fake('login', { alice => 'cleartext', bob => 9000000 }, 'prober');
$pw = PgWing::Test->new(
	name      => 'login',
	backends  => [ [ poser => "host=127.0.0.1 port=$pose_port" ] ],
	auth_type => 'scram-sha-256',
	users     => { prober => 'probe-secret', alice => 'alice-pw', bob => 'bob-pw' },
	settings  => {
		health_user         => 'prober',
		health_interval     => '200ms',
		server_require_auth => 'scram-sha-256,none',
	});
$pw->start;
ok($pw->wait_for_log(qr/backend poser: unknown -> up/), 'the poser passes the probes');

my ($rc, $out, $err) =
  $pw->psql('SELECT 1', user => 'alice', password => 'alice-pw', timeout => 30);
isnt($rc, 0, 'alice: the login fails');
like($err, qr/server asked for the password in clear, which server_require_auth does not allow/,
	'alice: the client is told why');

$t0 = time;
($rc, $out, $err) = $pw->psql('SELECT 1', user => 'bob', password => 'bob-pw', timeout => 30);
my $took = time - $t0;
isnt($rc, 0, 'bob: the login fails');
like($err, qr/server asked for 9000000 SCRAM iterations, more than server_scram_max_iterations/,
	'bob: the client is told why');
cmp_ok($took, '<', time_bound(2), 'bob: at once');

$t0 = time;
$pw->stop(signal => 'TERM');
cmp_ok(time - $t0, '<', time_bound(2), 'SIGTERM stops pgwing at once');

$received = slurp_file($pose_record);
unlike($received, qr/alice-pw/, 'the poser never got alice\'s password');
like($received, qr/^bob first p /m, 'the poser got bob\'s initial response');
unlike($received, qr/^bob after p /m, 'but never a proof: nothing was derived');

# 3. Over TLS the probe reads the server's requests through libpq's own TLS
# session: a real server with ssl = on asking the probe for SCRAM (4096
# iterations). Within the cap it comes up; under a cap of 1000 it is refused.
my $certs = "$PostgreSQL::Test::Utils::tmp_check/096_certs";
mkdir $certs;
my ($openssl_out, $openssl_err);
IPC::Run::run(
	[   'openssl', 'req', '-new', '-x509', '-days', '2', '-nodes', '-newkey', 'ec',
		'-pkeyopt', 'ec_paramgen_curve:prime256v1', '-subj', '/CN=127.0.0.1',
		'-keyout', "$certs/pg.key", '-out', "$certs/pg.crt"
	],
	'<', \undef, '>', \$openssl_out, '2>', \$openssl_err) or die "openssl: $openssl_err";
chmod 0600, "$certs/pg.key";
my $tls = new_node('tls',
	conf => "ssl = on\nssl_cert_file = '$certs/pg.crt'\nssl_key_file = '$certs/pg.key'\n");
create_role($tls, 'prober', 'probe-secret');
set_hba($tls, 'scram-sha-256');
for my $cap (32768, 1000)
{
	$pw = PgWing::Test->new(
		name     => "tls_$cap",
		backends => [ [ tls => $tls ] ],
		users    => { prober => 'probe-secret' },
		settings => {
			health_user                 => 'prober',
			health_interval             => '200ms',
			server_tls_sslmode          => 'require',
			server_scram_max_iterations => $cap,
		});
	$pw->start;
	if ($cap > 4096)
	{
		ok($pw->wait_for_log(qr/backend tls: unknown -> up/),
			'TLS: an honest SCRAM login within the cap comes up');
		is( $tls->safe_psql(
				'postgres',
				"SELECT ssl FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) "
				  . "WHERE application_name = 'pgwing-health'"),
			't',
			'TLS: the probe is on TLS');
	}
	else
	{
		ok( $pw->wait_for_log(
				qr/backend tls: .*: refused the server's login: server asked for 4096 SCRAM iterations, more than server_scram_max_iterations \(1000\)/
			),
			'TLS: a SCRAM login over the cap is refused');
	}
	$pw->stop;
}

done_testing();
