# pgwing --check validates a config: 0 for a good one, non-zero with
# "file:line: message" for a broken one; pgwing refuses to start on the same
# errors; --version and --help.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;

my $dir = PostgreSQL::Test::Utils::tempdir;
open my $fh, '>', "$dir/userlist.txt" or die $!;
print $fh qq{"alice" "secret"\n};
close $fh;

my $good = <<"EOF_INI";
; a comment
[pgwing]
listen_addr = 127.0.0.1
rw_port = 6001          ; inline comment
ro_port = 6002
unix_socket_dir =
auth_type = scram-sha-256
auth_file = userlist.txt
admin_users = admin
max_client_conn = 100
max_packet_size = 64MB
server_connect_timeout = 5s
client_login_timeout = 1min

[backends]
primary = host=127.0.0.1 port=6432 region=local
EOF_INI

sub write_ini
{
	my ($name, $text) = @_;
	open my $f, '>', "$dir/$name" or die $!;
	print $f $text;
	close $f;
	return "$dir/$name";
}

my $file = write_ini('good.ini', $good);
my ($rc, $out, $err) = run_pgwing('--check', $file);
is($rc, 0, '--check on a good config exits 0') or diag "$out\n$err";

# Each broken variant: a replacement for one line of the good file, and what
# the message must say. Line numbers count from 1 in the good file.
my @broken = (
	[ 'bad integer',     4,  'rw_port = abc',                  qr/rw_port/ ],
	[ 'port range',      5,  'ro_port = 70000',                qr/ro_port/ ],
	[ 'unknown setting', 10, 'max_client_connections = 5',     qr/max_client_connections/ ],
	[ 'bad size',        11, 'max_packet_size = 64 parsecs',   qr/max_packet_size/ ],
	[ 'bad duration',    12, 'server_connect_timeout = soon',  qr/server_connect_timeout/ ],
	[ 'bad enum',        7,  'auth_type = kerberos',           qr/auth_type/ ],
	[ 'no equals sign',  9,  'admin_users admin',              qr/./ ],
	[ 'unknown section', 2,  '[pgwinged]',                     qr/pgwinged/ ],
	[ 'bad backend',     16, 'primary = port=6432 region=x',   qr/host|primary/ ]);

for my $b (@broken)
{
	my ($what, $line, $text, $re) = @$b;
	my @lines = split /\n/, $good, -1;
	$lines[ $line - 1 ] = $text;
	my $f = write_ini('broken.ini', join("\n", @lines));
	($rc, $out, $err) = run_pgwing('--check', $f);
	isnt($rc, 0, "--check, $what: non-zero exit");
	like($err . $out, qr/^\Q$f\E:$line: /m, "--check, $what: says $f:$line");
	like($err . $out, $re, "--check, $what: names the culprit");
}

# Errors that belong to no single line still fail.
my @whole = (
	[ 'no backends',       $good =~ s/\[backends\].*//sr ],
	[ 'same rw and ro port', $good =~ s/ro_port = 6002/ro_port = 6001/r ],
	[ 'missing auth file', $good =~ s/userlist\.txt/no_such_file.txt/r ]);
for my $w (@whole)
{
	my $f = write_ini('broken.ini', $w->[1]);
	($rc, $out, $err) = run_pgwing('--check', $f);
	isnt($rc, 0, "--check, $w->[0]: non-zero exit");
	isnt($err . $out, '', "--check, $w->[0]: explains why") and note "$w->[0]: $err";
}
($rc, $out, $err) = run_pgwing('--check', "$dir/nonexistent.ini");
isnt($rc, 0, '--check on a missing file fails');
like($err, qr/nonexistent\.ini/, '... naming the file');

# An environment override with a bad value names the variable.
{
	local $ENV{PGWING_RW_PORT} = 'abc';
	($rc, $out, $err) = run_pgwing('--check', $file);
	isnt($rc, 0, 'bad PGWING_RW_PORT: non-zero exit');
	like($err, qr/PGWING_RW_PORT/, 'bad PGWING_RW_PORT: the message names the variable');
}

# pgwing itself will not start on a broken config, with the same message.
my $pw = PgWing::Test->new(backends => [ [ primary => 'host=127.0.0.1 port=1' ] ],
	settings => { rw_port => 'abc' });
ok(!$pw->start(fail_ok => 1, timeout => 10), 'pgwing does not start with rw_port = abc');
my $st = $pw->exit_status;
ok(defined $st && ($st & 127) == 0 && ($st >> 8) != 0, 'it exits with a non-zero code (no crash)')
  or diag 'status ' . ($st // 'undef');
like($pw->log_content, qr/\Q${\ $pw->config_file}\E:\d+: .*rw_port/, 'and logs file:line');

# --version, --help.
($rc, $out, $err) = run_pgwing('--version');
is($rc, 0, '--version exits 0');
like($out, qr/^pgwing \d+\.\d+/, '--version prints the version');
($rc, $out, $err) = run_pgwing('--help');
is($rc, 0, '--help exits 0');
like($out, qr/--check/, '--help shows usage');
($rc, $out, $err) = run_pgwing('--no-such-flag');
isnt($rc, 0, 'an unknown flag fails');

done_testing();
