# pgwing --print-config prints the effective configuration as a config file:
# the file's settings, the defaults of the rest and the environment's
# overrides, the backends and the discover= lines. What it prints loads again
# (--check) and prints the same.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;

my $dir = PostgreSQL::Test::Utils::tempdir;

sub write_ini
{
	my ($name, $text) = @_;
	open my $f, '>', "$dir/$name" or die $!;
	print $f $text;
	close $f;
	return "$dir/$name";
}

write_ini('users.txt', qq{"alice" "secret"\n});
chmod 0600, "$dir/users.txt";
my $file = write_ini('pgwing.ini', <<'EOF_INI');
[pgwing]
listen_addr = 127.0.0.1
rw_port = 6001
ro_port = 6002
admin_users = admin
discovery_interval = 10s
auth_file = users.txt

[backends]
primary = host=127.0.0.1 port=6432 region=local
discover = fly:my-db sslmode=disable
discover = dns:db.internal regions=ams,fra port=6433
EOF_INI

my ($rc, $out, $err);
{
	local $ENV{FLY_NAMESERVER} = '[fdaa::3]:53';
	local $ENV{FLY_REGION}     = 'ams';
	($rc, $out, $err) = run_pgwing('--print-config', $file);
}
is($rc, 0, '--print-config exits 0') or diag $err;
like($out, qr/^\[pgwing\]$/m,                        'a [pgwing] section');
like($out, qr/^rw_port = "6001"$/m,                  'a setting from the file');
like($out, qr/^discovery_interval = "10s"$/m,        'a duration as written');
like($out, qr/^discovery_timeout = "2s"$/m,          'a default');
like($out, qr/^dns_nameserver = "\[fdaa::3\]:53"$/m, 'FLY_NAMESERVER applied');
like($out, qr/^region = "ams"$/m,                    'FLY_REGION applied');
like($out, qr/^auth_file = "\Q$dir\E\/users\.txt"$/m, 'a path made absolute');
like($out, qr/^primary = host="127\.0\.0\.1" port=6432 region="local"$/m, 'the backend');
like($out, qr/^discover = fly:my-db port=5433 region="" sslmode="disable"$/m,
	'the fly: line, with its default port');
like($out, qr/^discover = dns:db\.internal regions="ams,fra" port=6433 region=""$/m,
	'the dns: line');

# Printed, it is a config file that gives the same configuration.
my $printed = write_ini('printed.ini', $out);
($rc, undef, $err) = run_pgwing('--check', $printed);
is($rc, 0, 'the printed config is valid') or diag $err;
my ($rc2, $again) = run_pgwing('--print-config', $printed);
is($rc2,   0,    'and prints');
is($again, $out, 'the same');

# A broken file is reported as --check reports it.
my $broken = write_ini('broken.ini', "[backends]\ndiscover = consul:db\n");
($rc, $out, $err) = run_pgwing('--print-config', $broken);
isnt($rc, 0, 'a broken config: non-zero exit');
like($err, qr/broken\.ini:2: discover: expected fly:<app> or dns:<name>/, 'and why');
is($out, '', 'nothing printed');

done_testing();
