# TLS on both sides: clients verify pgwing (verify-full), pgwing verifies
# Postgres (server_tls_sslmode = verify-full) and pg_stat_ssl shows it; a wrong
# CA, a plaintext client against require (28000), a backend certificate for
# another host (08006 naming the reason), channel binding, garbage after 'S',
# a certificate reload that keeps sessions, and pgbench -S over TLS vs plaintext.
use strict;
use warnings;
use IO::Select;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;

my $certs = PostgreSQL::Test::Utils::tempdir('certs');

sub openssl
{
	my @args = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'openssl', @args ], '<', \undef, '>', \$out, '2>', \$err)
	  or die "openssl @args: $err";
	return;
}

# A CA, and a certificate it signs for $san (an EC key: quick to make).
sub make_ca
{
	my ($name) = @_;
	openssl('req', '-new', '-x509', '-days', '2', '-nodes', '-newkey', 'ec',
		'-pkeyopt', 'ec_paramgen_curve:prime256v1', '-subj', "/CN=$name",
		'-keyout', "$certs/$name.key", '-out', "$certs/$name.crt");
	return;
}

sub make_cert
{
	my ($name, $ca, $cn, $san) = @_;
	openssl('req', '-new', '-nodes', '-newkey', 'ec', '-pkeyopt',
		'ec_paramgen_curve:prime256v1', '-subj', "/CN=$cn",
		'-keyout', "$certs/$name.key", '-out', "$certs/$name.csr");
	open my $fh, '>', "$certs/$name.ext" or die $!;
	print $fh "subjectAltName = $san\n";
	close $fh;
	openssl('x509', '-req', '-in', "$certs/$name.csr", '-CA', "$certs/$ca.crt",
		'-CAkey', "$certs/$ca.key", '-CAcreateserial', '-days', '2',
		'-extfile', "$certs/$name.ext", '-out', "$certs/$name.crt");
	chmod 0600, "$certs/$name.key";
	return;
}

make_ca('ca');
make_ca('other_ca');
make_cert('pg',       'ca', '127.0.0.1', 'IP:127.0.0.1');
make_cert('pg_wrong', 'ca', 'otherhost', 'DNS:otherhost');
make_cert('pgwing',   'ca', '127.0.0.1', 'IP:127.0.0.1');
make_cert('pgwing2',  'ca', '127.0.0.1', 'IP:127.0.0.1');
make_cert('alice',    'ca', 'alice',     'DNS:alice');
make_cert('bob',      'ca', 'bob',       'DNS:bob');

my $node = new_node('primary',
	conf => "ssl = on\nssl_cert_file = '$certs/pg.crt'\nssl_key_file = '$certs/pg.key'\n");
create_role($node, 'alice', 'alice-pw');
set_hba($node, 'scram-sha-256');

my %tls = (
	client_tls_sslmode   => 'require',
	client_tls_cert_file => "$certs/pgwing.crt",
	client_tls_key_file  => "$certs/pgwing.key",
	server_tls_sslmode   => 'verify-full',
	server_tls_ca_file   => "$certs/ca.crt");
my $backend = 'host=127.0.0.1 port=' . $node->port;
my $pw = PgWing::Test->new(
	name      => 'tls',
	backends  => [ [ primary => $backend ] ],
	auth_type => 'scram-sha-256',
	users     => { alice => 'alice-pw' },
	settings  => { %tls, hold_timeout => '3s', admin_users => 'alice' });
$pw->start;

my %alice = (user => 'alice', password => 'alice-pw');
my $verify = "sslrootcert=$certs/ca.crt";

# Both legs encrypted: psql verifies pgwing, and the backend sees TLS from pgwing.
is( $pw->safe_psql(
		'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()',
		%alice,
		sslmode => 'verify-full',
		extra   => $verify),
	't',
	'verify-full through pgwing works; pg_stat_ssl shows the pgwing connection encrypted');

# The client's own verification: a CA that did not sign pgwing's certificate.
my ($rc, $out, $err) = $pw->psql('SELECT 1', %alice, sslmode => 'verify-full',
	extra => "sslrootcert=$certs/other_ca.crt");
isnt($rc, 0, 'wrong CA: refused');
like($err, qr/certificate verify failed/, 'wrong CA: the client says why');

# Plaintext against require: 28000 before any password is asked.
{
	my $s = $pw->raw_connect;
	print $s startup_packet(user => 'alice', database => 'postgres');
	my ($type, $body) = read_message($s, 10);
	is($type, 'E', 'plaintext client against require: an error, not a password request');
	is(error_fields($body)->{C}, '28000', 'plaintext client against require: 28000');
	($rc, $out, $err) = $pw->psql('SELECT 1', %alice, sslmode => 'disable');
	like($err, qr/requires TLS/, 'psql sslmode=disable: refused with the reason');
}

# SCRAM-SHA-256-PLUS: the login is bound to the TLS connection.
is( $pw->safe_psql(
		'SELECT 1', %alice,
		sslmode => 'verify-full',
		extra   => "$verify channel_binding=require"),
	'1',
	'channel_binding=require through pgwing');

# The console tells TLS connections apart.
like(
	$pw->safe_psql('SHOW CLIENTS', %alice, dbname => 'pgwing', sslmode => 'require'),
	qr/^(?:[^|]*\|){11}t\|/m,
	'SHOW CLIENTS: tls is true for a TLS client');

# PostgreSQL 17's direct TLS: a ClientHello first, with ALPN "postgresql".
{
	my ($sout, $serr) = ('', '');
	IPC::Run::run(
		[   'openssl', 's_client', '-connect', '127.0.0.1:' . $pw->port,
			'-alpn', 'postgresql', '-CAfile', "$certs/ca.crt", '-verify_return_error'
		],
		'<', \undef, '>', \$sout, '2>', \$serr, IPC::Run::timeout(30));
	like($sout, qr/ALPN protocol: postgresql/, 'direct TLS: ALPN postgresql negotiated');
	like($sout, qr/Verify return code: 0 /, 'direct TLS: pgwing\'s certificate verifies');
	($sout, $serr) = ('', '');
	IPC::Run::run([ 'openssl', 's_client', '-connect', '127.0.0.1:' . $pw->port, '-alpn', 'http/1.1' ],
		'<', \undef, '>', \$sout, '2>', \$serr, IPC::Run::timeout(30));
	like($sout . $serr, qr/no application protocol|alert/i, 'direct TLS: another ALPN is refused');
}

# Garbage where a ClientHello should be: pgwing closes that one and serves on.
{
	my $s = $pw->raw_connect;
	print $s pack('NN', 8, 80877103);
	my $answer = '';
	sysread($s, $answer, 1);
	is($answer, 'S', 'SSLRequest answered S');
	print $s "this is not a TLS ClientHello\n" x 20;
	my $sel = IO::Select->new($s);
	my $closed = 0;
	while ($sel->can_read(10))
	{
		my $n = sysread($s, my $buf, 4096);
		if (!$n)
		{
			$closed = 1;
			last;
		}
	}
	ok($closed, 'garbage after S: pgwing closes the connection');
	ok($pw->alive, 'garbage after S: pgwing is still running');
	is($pw->safe_psql('SELECT 1', %alice, sslmode => 'require'),
		'1', 'garbage after S: pgwing still serves');
}

# RELOAD re-reads certificates; an established session keeps its connection.
{
	my $session = $pw->background_psql(%alice, sslmode => 'verify-full', extra => $verify);
	is($session->query_safe('SELECT 1'), '1', 'a TLS session before the reload');
	$pw->set(
		client_tls_cert_file => "$certs/pgwing2.crt",
		client_tls_key_file  => "$certs/pgwing2.key");
	$pw->write_config;
	my $offset = $pw->log_position;
	$pw->signal('HUP');
	ok($pw->wait_for_log(qr/configuration reloaded/, $offset), 'reload with new certificates');
	is($session->query_safe('SELECT 2'), '2', 'the session survives the certificate reload');
	$session->quit;
	is( $pw->safe_psql('SELECT 3', %alice, sslmode => 'verify-full', extra => $verify),
		'3', 'a new connection after the reload verifies');
}

# Client certificates: verify-full wants one from our CA whose CN is the user.
{
	my $certpw = PgWing::Test->new(
		name      => 'certs',
		backends  => [ [ primary => $backend ] ],
		auth_type => 'scram-sha-256',
		users     => { alice => 'alice-pw' },
		settings  => {
			%tls,
			client_tls_sslmode => 'verify-full',
			client_tls_ca_file => "$certs/ca.crt"
		});
	$certpw->start;
	my $with = sub { "$verify sslcert=$certs/$_[0].crt sslkey=$certs/$_[0].key" };
	is($certpw->safe_psql('SELECT 1', %alice, sslmode => 'verify-full', extra => $with->('alice')),
		'1', 'client certificate for the user: accepted');
	($rc, $out, $err) = $certpw->psql('SELECT 1', %alice, sslmode => 'verify-full',
		extra => "$verify sslcert=/dev/null");
	isnt($rc, 0, 'no client certificate: refused');
	($rc, $out, $err) =
	  $certpw->psql('SELECT 1', %alice, sslmode => 'verify-full', extra => $with->('bob'));
	like($err, qr/common name is not the user name/, "another user's certificate: refused");
	$certpw->stop;
}

# A backend whose certificate names another host: the client gets 08006 and why.
{
	$node->append_conf('postgresql.conf',
		"ssl_cert_file = '$certs/pg_wrong.crt'\nssl_key_file = '$certs/pg_wrong.key'\n");
	$node->reload;
	# Another application_name: the pooled server, verified before the reload, doesn't fit.
	($rc, $out, $err) =
	  $pw->psql('SELECT 1', %alice, sslmode => 'require', application_name => 'new-login');
	isnt($rc, 0, 'backend certificate for another host: refused');
	like($err, qr/primary/, 'the error names the backend');
	like($err, qr/mismatch|does not match/, 'the error gives the verification failure');
	like($pw->log_content, qr/TLS handshake failed with backend primary.*mismatch/,
		"pgwing's own verification refused the backend");
	$node->append_conf('postgresql.conf',
		"ssl_cert_file = '$certs/pg.crt'\nssl_key_file = '$certs/pg.key'\n");
	$node->reload;
}

# pgbench -S over TLS on both sides, against the same through plaintext.
{
	my $secs = $ENV{PGWING_PGBENCH_SECONDS} // 10;
	my ($iout, $ierr) = ('', '');
	IPC::Run::run([ 'pgbench', '-i', '-s', '1', '-q', $node->connstr('postgres') ],
		'<', \undef, '>', \$iout, '2>', \$ierr)
	  or die "pgbench -i: $ierr";
	$node->safe_psql('postgres', 'GRANT SELECT ON ALL TABLES IN SCHEMA public TO alice');
	my $plain = PgWing::Test->new(
		name      => 'plain',
		backends  => [ [ primary => "$backend sslmode=disable" ] ],
		auth_type => 'scram-sha-256',
		users     => { alice => 'alice-pw' });
	$plain->start;

	# The probes take the backend back once its right certificate is in place.
	my $is_up = 0;
	for (1 .. 30)
	{
		last if $is_up = $pw->psql('SELECT 1', %alice, sslmode => 'require') == 0;
		sleep 1;
	}
	ok($is_up, 'the backend serves again with its own certificate');
	my %tps;
	for my $run ([ tls => $pw, 'require' ], [ plain => $plain, 'disable' ])
	{
		my ($name, $inst, $mode) = @$run;
		my ($bout, $berr) = ('', '');
		IPC::Run::run(
			[   'pgbench', '-S', '-n', '-c', '8', '-j', '4', '-T', $secs,
				$inst->connstr(%alice, sslmode => $mode)
			],
			'<', \undef, '>', \$bout, '2>', \$berr,
			IPC::Run::timeout($secs + 120));
		my ($failed) = $bout =~ /number of failed transactions: (\d+)/;
		my ($processed) = $bout =~ /number of transactions actually processed: (\d+)/;
		ok(defined $processed && $processed > 0, "pgbench -S $name: transactions processed")
		  or diag "$bout\n$berr";
		is($failed // 0, 0, "pgbench -S $name: 0 failures") or diag "$bout\n$berr";
		($tps{$name}) = $bout =~ /tps = ([\d.]+)/;
	}
	note sprintf('pgbench -S 8 clients %d s: TLS %.0f tps, plaintext %.0f tps, ratio %.2f',
		$secs, $tps{tls} // 0, $tps{plain} // 0,
		$tps{plain} ? ($tps{tls} // 0) / $tps{plain} : 0);
	$plain->stop;
}

$pw->stop;
done_testing();
