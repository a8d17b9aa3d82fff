# Hardening of authentication, as an attacker on the network would try it:
# auth_type = trust warns and does not hand out the admin console over TCP
# (a password from the auth file is asked unless admin_trust_tcp = on);
# scram-sha-256 never offers md5, so an md5 entry can't be downgraded to and
# the request tells nothing about who exists; a TLS private key others can read
# is refused at start and at reload, and a world-writable auth file is warned
# about.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;

my $node = new_node('primary');
create_role($node, 'alice', 'alice-pw');
create_role($node, 'mia',   'mia-pw', encryption => 'md5');
my $mia_md5 = role_secret($node, 'mia');
like($mia_md5, qr/^md5[0-9a-f]{32}$/, 'mia has an md5 hash');

# trust: the console over TCP asks for the auth file's password.
my $pw = PgWing::Test->new(
	name      => 'trust',
	backends  => [ [ primary => $node ] ],
	auth_type => 'trust',
	users     => { admin => 'admin-pw' },
	settings  => { admin_users => 'admin,ops', admin_trust_tcp => 'off' });
$pw->start;
ok($pw->wait_for_log(qr/WARNING.*auth_type = trust .*any user without a password/),
	'trust on TCP: warning at start');

is($pw->safe_psql('SELECT current_user', user => 'alice'),
	'alice', 'trust: a database still needs no password');

my $r = raw_login($pw->raw_connect, user => 'admin', database => 'pgwing');
is($r->{auth}[0], 10, 'console over TCP under trust: SCRAM is asked')
  or diag explain $r;
is($r->{error}{C}, '28P01', 'console without the password: 28P01') or diag explain $r;
my ($rc, $out, $err) =
  $pw->psql('SHOW POOLS', dbname => 'pgwing', user => 'admin', extra_params => ['-w']);
isnt($rc, 0, 'console over TCP: psql without a password is refused');
like($err, qr/no password supplied/, 'console over TCP: psql is asked for a password');
($rc, $out, $err) = $pw->psql('SHOW POOLS', dbname => 'pgwing', user => 'admin',
	password => 'wrong', extra_params => ['-w']);
isnt($rc, 0, 'console over TCP: a wrong password is refused');

($rc, $out, $err) =
  $pw->psql('SHOW POOLS', dbname => 'pgwing', user => 'admin', password => 'admin-pw');
is($rc, 0, "console over TCP: the auth file's password logs in") or diag $err;
like($out, qr/alice/, 'console over TCP: SHOW POOLS answers');

# An admin user with no auth file entry can't log in at all, as in Postgres.
$r = raw_login($pw->raw_connect, user => 'ops', database => 'pgwing', password => 'x');
is($r->{error}{C}, '28P01', 'admin user without an entry: 28P01') or diag explain $r;
$r = raw_login($pw->raw_connect, user => 'nobody', database => 'pgwing');
is($r->{error}{C}, '28P01', 'unknown user on the console: 28P01') or diag explain $r;

# admin_trust_tcp = on, by RELOAD: trust reaches the console again.
my $off = $pw->log_position;
$pw->set(admin_trust_tcp => 'on');
$pw->write_config;
$pw->signal('HUP');
ok($pw->wait_for_log(qr/configuration reloaded/, $off), 'reloaded with admin_trust_tcp = on');
ok($pw->log_contains(qr/WARNING.*auth_type = trust .*admin_trust_tcp = on/, $off),
	'trust on TCP: warning at reload names admin_trust_tcp');
($rc, $out, $err) =
  $pw->psql('SHOW POOLS', dbname => 'pgwing', user => 'ops', extra_params => ['-w']);
is($rc, 0, 'admin_trust_tcp = on: the console needs no password') or diag $err;

# A world-writable auth file: a warning at reload, and with pgwing --check.
chmod 0666, $pw->auth_file;
$off = $pw->log_position;
$pw->signal('HUP');
ok($pw->wait_for_log(qr/configuration reloaded/, $off), 'reload with a writable auth file');
ok($pw->log_contains(qr/WARNING.*auth file .* is writable by its group or by anyone/, $off),
	'writable auth file: warning at reload');
my ($crc, $cout, $cerr) = run_pgwing('--check', $pw->config_file);
is($crc, 0, 'pgwing --check accepts a writable auth file');
like($cerr, qr/auth file .* is writable by its group or by anyone \(mode 0666\)/,
	'writable auth file: warning at start');
chmod 0600, $pw->auth_file;
$pw->stop;

# scram-sha-256 offers SCRAM only: an md5 entry is not asked for md5.
my $scram = PgWing::Test->new(
	name      => 'scram',
	backends  => [ [ primary => $node ] ],
	auth_type => 'scram-sha-256',
	users     => { alice => 'alice-pw', mia => $mia_md5 });
$scram->start;
$off = $scram->log_position;
$r = raw_login($scram->raw_connect, user => 'mia', password => 'mia-pw');
is($r->{auth}[0], 10, 'md5 entry under scram-sha-256: SCRAM is asked, not md5')
  or diag explain $r;
is($r->{error}{C}, '28P01', 'md5 entry under scram-sha-256: refused with 28P01')
  or diag explain $r;
ok($scram->wait_for_log(qr/user "mia": .*md5 hash.*offers only SCRAM/, $off),
	'md5 entry under scram-sha-256: the log says why');
my $unknown = raw_login($scram->raw_connect, user => 'nobody', password => 'mia-pw');
is_deeply($unknown->{auth}, $r->{auth}, 'an unknown user is asked exactly the same');
is($scram->safe_psql('SELECT current_user', user => 'alice', password => 'alice-pw'),
	'alice', 'a plaintext entry still logs in with SCRAM');
$scram->stop;

# TLS private key permissions, as Postgres checks them.
my $certs = PostgreSQL::Test::Utils::tempdir('certs');
my ($openssl_out, $openssl_err) = ('', '');
IPC::Run::run(
	[
		'openssl', 'req', '-new', '-x509', '-days', '2', '-nodes', '-newkey', 'ec',
		'-pkeyopt', 'ec_paramgen_curve:prime256v1', '-subj', '/CN=127.0.0.1',
		'-keyout', "$certs/pgwing.key", '-out', "$certs/pgwing.crt"
	],
	'<', \undef, '>', \$openssl_out, '2>', \$openssl_err)
  or die "openssl: $openssl_err";
my $tls = PgWing::Test->new(
	name     => 'tls',
	backends => [ [ primary => $node ] ],
	settings => {
		client_tls_sslmode   => 'prefer',
		client_tls_cert_file => "$certs/pgwing.crt",
		client_tls_key_file  => "$certs/pgwing.key",
	});
chmod 0644, "$certs/pgwing.key";
ok(!$tls->start(fail_ok => 1), 'world-readable private key: pgwing refuses to start');
like($tls->log_content, qr/private key file .*pgwing\.key has group or world access/,
	'world-readable private key: the message names the file and the problem');

chmod 0600, "$certs/pgwing.key";
$tls->start;
is($tls->safe_psql('SELECT 1', user => 'alice', sslmode => 'require'),
	'1', 'key 0600: TLS works');

chmod 0604, "$certs/pgwing.key";
$off = $tls->log_position;
$tls->signal('HUP');
ok($tls->wait_for_log(qr/reload failed, keeping the running config: private key file .* has group or world access/, $off),
	'world-readable private key at reload: reload fails and says why');
is($tls->safe_psql('SELECT 1', user => 'alice', sslmode => 'require'),
	'1', 'world-readable private key at reload: the running TLS setup stays');
ok($tls->alive, 'pgwing still runs');
chmod 0600, "$certs/pgwing.key";
$tls->stop;

done_testing();
