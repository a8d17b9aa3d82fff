# Log injection: what a client sends (here its user name, before it has
# authenticated) reaches the log escaped, so it cannot end a line and forge
# the next, send terminal escapes, or put bytes that are not UTF-8 in the file.
# And the console cannot point pgwing at a file: SET of logfile, auth_file or
# a TLS file is refused (an admin could otherwise write chosen lines into any
# file pgwing may write); RELOAD of the config file still changes them.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;

my $node = new_node('primary');
my $pw = PgWing::Test->new(
	backends  => [ [ primary => $node ] ],
	auth_type => 'md5',
	users     => { alice => 'secret', admin => 'adminpw' },
	# -v: the debug line of each login carries the user name too.
	verbose => 1);
$pw->start;

my $stamp = '2026-01-01 00:00:00.000 [1] LOG ';
my @forged = (
	"mallory\n${stamp}FAKE LINE: admin logged in",
	"mallory\r${stamp}FAKE CR LINE",
	"mallory\n\n\nFAKE AFTER BLANK LINES",
	"mallory\e[2K\e[1GFAKE TERMINAL",
	"mallory\x{7f}\x{01}\x{1f}\tFAKE CONTROLS",
	"mallory\xff\xfe\xc0\xafFAKE BYTES",
	"mallory\xc2\x9bFAKE C1",
	"back\\nslash",
	"j\xc3\xbcrgen");    # valid UTF-8 stays readable

my $offset = $pw->log_position;
for my $user (@forged)
{
	my $s = $pw->raw_connect;
	my $r = raw_login($s, user => $user, database => 'postgres', password => 'wrong');
	close $s;
	is($r->{error}{C} // '', '28P01', 'a forged user name fails to log in');
}
ok( $pw->wait_for_log(qr/authentication failed for user "j\xc3\xbcrgen"/, $offset),
	'the failures are logged');

my $log = substr($pw->log_content, $offset);
my @lines = split /\n/, $log;
my @fake = grep { /FAKE/ && !/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \[$pw->{pid}\] / } @lines;
is_deeply(\@fake, [], 'no log line starts with forged text: every line is pgwing\'s')
  or diag explain \@fake;
ok(!grep({ /^\Q$stamp\E/ } @lines), 'no line starts with the forged time stamp');
unlike($log, qr/[\x00-\x09\x0b-\x1f\x7f]/, 'no control character but the line ends');
ok(utf8::decode(my $copy = $log), 'the log is valid UTF-8');
unlike($log, qr/\xc2[\x80-\x9f]/, 'no C1 control');
like($log, qr/"mallory\\n\Q$stamp\EFAKE LINE: admin logged in"/,
	'a newline shows as \\n, the rest of the name on the same line');
like($log, qr/"mallory\\r\Q$stamp\EFAKE CR LINE"/, 'CR shows as \\r');
like($log, qr/"mallory\\n\\n\\nFAKE AFTER BLANK LINES"/, 'blank lines cannot be made');
like($log, qr/"mallory\\x1b\[2K\\x1b\[1GFAKE TERMINAL"/, 'ESC shows as \\x1b');
like($log, qr/"mallory\\x7f\\x01\\x1f\\tFAKE CONTROLS"/, 'DEL and C0 controls escaped');
like($log, qr/"mallory\\xff\\xfe\\xc0\\xafFAKE BYTES"/, 'bytes that are not UTF-8 escaped');
like($log, qr/"mallory\\u009bFAKE C1"/, 'a C1 control (CSI) escaped');
like($log, qr/"back\\\\nslash"/, 'a backslash is doubled, so \\n in the log is a newline');
like($log, qr/"j\xc3\xbcrgen"/, 'valid UTF-8 is logged as it is');

# The console: no file can be set, by any admin.
my $planted = $pw->dir . '/planted.sh';
for my $setting (qw(logfile auth_file client_tls_key_file server_tls_ca_file))
{
	my ($rc, $out, $err) = $pw->psql("SET $setting = '$planted'",
		dbname => 'pgwing', user => 'admin', password => 'adminpw');
	isnt($rc, 0, "SET $setting = <a path> fails");
	like($err, qr/setting "$setting" names a file and cannot be changed with SET; edit the config file and RELOAD/,
		"SET $setting: the console says why");
}
my $config = $pw->safe_psql('SHOW CONFIG', dbname => 'pgwing', user => 'admin', password => 'adminpw');
like($config, qr/^logfile\|\|/m, 'logfile unchanged (still stderr)');
unlike($config, qr/planted/, 'SHOW CONFIG names no planted file');
# A client's line after the refused SET would have gone to the planted file.
my $r = raw_login($pw->raw_connect, user => "x\nFAKE", database => 'postgres', password => 'wrong');
ok($pw->wait_for_log(qr/authentication failed for user "x\\nFAKE"/, $offset), 'pgwing still logs where it did');
ok(!-e $planted, 'no file was created at the path the console named');
# Other settings still change from the console.
is($pw->safe_psql('SET hold_timeout = 7s', dbname => 'pgwing', user => 'admin', password => 'adminpw'),
	'', 'SET of a setting that names no file still works');

# RELOAD of the file is how the log moves.
my $newlog = $pw->dir . '/reloaded.log';
$pw->set(logfile => $newlog);
$pw->write_config;
$pw->safe_psql('RELOAD', dbname => 'pgwing', user => 'admin', password => 'adminpw');
$r = raw_login($pw->raw_connect, user => "y\nFAKE", database => 'postgres', password => 'wrong');
my $moved = 0;
for (1 .. 100)
{
	$moved = 1, last if -f $newlog && slurp_file($newlog) =~ /authentication failed for user "y\\nFAKE"/;
	select(undef, undef, undef, 0.1);
}
ok($moved, 'after RELOAD the log goes to the file the config names, escaped');

$pw->stop;
done_testing();
