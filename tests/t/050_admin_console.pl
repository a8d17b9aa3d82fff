# The admin console on database "pgwing": every command through psql (-c and
# -f), the columns of each SHOW and values checked against a known state,
# roles (admin, stats, others), PAUSE/RESUME with clients held and released,
# SET, KILL_CLIENT, and the extended protocol refused cleanly.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use IPC::Run;
use Time::HiRes qw(usleep time);
use Test::More;

my $node = new_node('primary');
my $pw = PgWing::Test->new(
	backends => [ [ pg1 => $node, region => 'ams' ] ],
	settings => {
		admin_users     => 'admin',
		stats_users     => 'watcher',
		health_interval => '200ms',
		health_user     => os_user(),
		hold_timeout    => '45s',
	});
$pw->start;
ok($pw->wait_for_log(qr/backend pg1: unknown -> up \(primary/), 'backend probed up');

my %psql_env = map { $_ => $ENV{$_} } grep { !/^PG/ } keys %ENV;

# psql -c against the console: ($rc, $stdout, $stderr), unaligned, with headers.
sub console_c
{
	my ($sql, %o) = @_;
	my @cmd = (
		'psql', '-X', '-A', '-v', 'ON_ERROR_STOP=1', '-d',
		$pw->connstr(dbname => 'pgwing', user => $o{user} // 'admin'),
		'-c', $sql);
	my ($out, $err) = ('', '');
	local %ENV = %psql_env;
	IPC::Run::run(\@cmd, '<', \undef, '>', \$out, '2>', \$err,
		IPC::Run::timeout($o{timeout} // 60));
	chomp $out;
	chomp $err;
	return ($? >> 8, $out, $err);
}

# A SHOW as a list of hashes, plus its column names.
sub show
{
	my ($what, %o) = @_;
	my ($rc, $out, $err) = console_c("SHOW $what", %o);
	die "SHOW $what failed: $err" if $rc != 0;
	my @lines = split /\n/, $out;
	pop @lines if @lines && $lines[-1] =~ /^\(\d+ rows?\)$/;
	my @cols = split /\|/, shift(@lines), -1;
	my @rows;
	for my $l (@lines)
	{
		my @v = split /\|/, $l, -1;
		push @rows, { map { $cols[$_] => $v[$_] } 0 .. $#cols };
	}
	return (\@cols, \@rows);
}

sub pool_row
{
	my ($db) = @_;
	my (undef, $rows) = show('POOLS');
	my ($row) = grep { $_->{database} eq $db && $_->{target} eq 'rw' } @$rows;
	return $row;
}

# Every SHOW, with its exact column list.
my %columns = (
	HELP     => 'command description',
	VERSION  => 'version',
	CONFIG   => 'key value default changeable',
	BACKENDS => 'name host port region role state lsn lag_bytes lag_ms rtt_ms clients '
	  . 'last_error last_change last_wake wake_ms awake_for',
	POOLS => 'database user target cl_active cl_waiting cl_held_for sv_active sv_idle '
	  . 'sv_login maxwait_ms pool_mode',
	CLIENTS => 'id user database target state addr port backend connect_time request_time '
	  . 'wait_ms tls application_name link',
	STATS => 'database target total_xact_count total_query_count total_received total_sent '
	  . 'total_xact_time total_query_time total_wait_time avg_xact_count avg_query_count '
	  . 'avg_recv avg_sent avg_xact_time avg_query_time avg_wait_time replica_reads '
	  . 'primary_reads replica_refusals catch_up_count catch_up_time catch_up_fallbacks '
	  . 'state_checks state_check_time state_check_pins',
	LISTS => 'list items',
	STATE => 'key value',
);
$columns{SERVERS} = $columns{CLIENTS};

# Some traffic first, so pools and stats have rows.
is($pw->safe_psql('SELECT 1'), '1', 'a query through pgwing');
my $session = $pw->background_psql(application_name => 'holder');
$session->query_safe('SELECT 1');

for my $what (sort keys %columns)
{
	my ($cols) = show($what);
	is("@$cols", $columns{$what}, "SHOW $what: columns");
}
for my $what (qw(pools Pools pOOLs))
{
	my ($rc) = console_c("show $what;");
	is($rc, 0, "case-insensitive with a trailing ';': show $what;");
}

# Values against the known state.
my (undef, $rows) = show('VERSION');
like($rows->[0]{version}, qr/^pgwing \d/, 'SHOW VERSION');
(undef, $rows) = show('HELP');
ok((grep { $_->{command} eq 'PAUSE [db]' } @$rows), 'SHOW HELP lists PAUSE');
(undef, $rows) = show('CONFIG');
my %config = map { $_->{key} => $_ } @$rows;
is($config{hold_timeout}{value},      '45s', 'SHOW CONFIG: the file\'s value');
is($config{hold_timeout}{default},    '30s', 'SHOW CONFIG: the default');
is($config{hold_timeout}{changeable}, 't',   'SHOW CONFIG: hold_timeout changeable');
is($config{rw_port}{changeable},      'f',   'SHOW CONFIG: rw_port is not');

(undef, $rows) = show('BACKENDS');
is(scalar @$rows, 1, 'SHOW BACKENDS: one backend');
my $b = $rows->[0];
is_deeply([ @$b{qw(name host port region role state)} ],
	[ 'pg1', '127.0.0.1', $node->port, 'ams', 'primary', 'up' ], 'SHOW BACKENDS: pg1');
like($b->{lsn},    qr/^[0-9A-F]+\/[0-9A-F]+$/, 'SHOW BACKENDS: lsn');
like($b->{rtt_ms}, qr/^\d+\.\d+$/,             'SHOW BACKENDS: rtt_ms');
is($b->{clients}, '2',
	'SHOW BACKENDS: two server connections, the held session\'s and the first query\'s, pooled');
like($b->{last_change}, qr/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\+00$/,
	'SHOW BACKENDS: last_change is a timestamptz');

my $pool = pool_row('postgres');
ok($pool, 'SHOW POOLS: a pool for postgres');
is_deeply([ @$pool{qw(user cl_active cl_waiting cl_held_for sv_active sv_idle pool_mode)} ],
	[ os_user(), 1, 0, '', 0, 2, 'session' ],
	'SHOW POOLS: one idle session, two idle servers (one pooled)');

(undef, $rows) = show('CLIENTS');
my ($holder) = grep { $_->{application_name} eq 'holder' } @$rows;
ok($holder, 'SHOW CLIENTS: the session is listed with its application_name');
is_deeply([ @$holder{qw(user database target state backend tls)} ],
	[ os_user(), 'postgres', 'rw', 'active', 'pg1', 'f' ], 'SHOW CLIENTS: its columns');
my ($me) = grep { $_->{database} eq 'pgwing' } @$rows;
is($me->{state}, 'admin', 'SHOW CLIENTS: the console itself');

(undef, $rows) = show('SERVERS');
my ($server) = grep { $_->{link} eq $holder->{id} } @$rows;
ok($server, 'SHOW SERVERS: the session\'s server, linked to its client');
is($holder->{link}, $server->{id}, 'SHOW CLIENTS: linked to the server');
is_deeply([ @$server{qw(state addr port backend)} ],
	[ 'active', '127.0.0.1', $node->port, 'pg1' ], 'SHOW SERVERS: its columns');

(undef, $rows) = show('STATS');
my ($st) = grep { $_->{database} eq 'postgres' && $_->{target} eq 'rw' } @$rows;
ok($st && $st->{total_query_count} >= 2, 'SHOW STATS: queries counted');
ok($st->{total_received} > 0 && $st->{total_sent} > 0, 'SHOW STATS: bytes counted');

(undef, $rows) = show('LISTS');
my %lists = map { $_->{list} => $_->{items} } @$rows;
is($lists{backends},      1, 'SHOW LISTS: backends');
is($lists{admin_clients}, 1, 'SHOW LISTS: this console');
is($lists{servers},       2, 'SHOW LISTS: servers, the pooled one too');

(undef, $rows) = show('STATE');
my %state = map { $_->{key} => $_->{value} } @$rows;
is($state{primary}, 'pg1', 'SHOW STATE: the primary');
is($state{paused},  'no',  'SHOW STATE: not paused');

# psql -f: several commands in one session, each answered in turn.
my $script = "SHOW VERSION;\nSHOW STATE;\n-- a comment\nRECONNECT postgres;\nSHOW LISTS;\n";
my $out = $pw->safe_psql($script, dbname => 'pgwing', user => 'admin');
like($out, qr/^pgwing .*\nprimary\|pg1.*\nbackends\|1/s, 'psql -f runs every command');

# Errors.
my ($rc, $err);
($rc, $out, $err) = console_c('SELECT 1');
like($err, qr/unknown command "SELECT"; the commands are SHOW, PAUSE/,
	'unknown command: 42601 with the list');
($rc, $out, $err) = console_c('SHOW NOTHING');
like($err, qr/unknown SHOW item "NOTHING"/, 'unknown SHOW item');
($rc, $out, $err) = console_c('SET rw_port = 1');
like($err, qr/cannot change while pgwing runs/, 'SET of a restart-only setting refused');
($rc, $out, $err) = console_c('SET hold_timeout = soon');
like($err, qr/expected a duration/, 'SET with a bad value: the reason');
($rc, $out, $err) = console_c("SET hold_timeout = '50s'");
is($rc, 0, 'SET hold_timeout');
(undef, $rows) = show('CONFIG');
%config = map { $_->{key} => $_ } @$rows;
is($config{hold_timeout}{value}, '50s', 'SHOW CONFIG shows the SET value');
($rc, $out, $err) = console_c('KILL_CLIENT 999999');
like($err, qr/no client with id 999999/, 'KILL_CLIENT of an unknown id');

# Roles: a stranger gets 42501 at login; a stats user may only SHOW.
($rc, $out, $err) = console_c('SHOW POOLS', user => 'alice');
like($err, qr/user "alice" may not use the admin console/, 'non-console user refused');
my $sock = $pw->raw_connect;
my $login = raw_login($sock, user => 'alice', database => 'pgwing');
is($login->{error}{C}, '42501', 'non-console user: SQLSTATE 42501');
close $sock;
my ($cols) = show('POOLS', user => 'watcher');
is("@$cols", $columns{POOLS}, 'stats user: SHOW POOLS works');
($rc, $out, $err) = console_c('PAUSE', user => 'watcher');
like($err, qr/may only run SHOW commands/, 'stats user: PAUSE refused');
($rc, $out, $err) = console_c('RELOAD', user => 'watcher');
isnt($rc, 0, 'stats user: RELOAD refused');
(undef, $rows) = show('STATE');
%state = map { $_->{key} => $_->{value} } @$rows;
is($state{paused}, 'no', 'the refused PAUSE did nothing');

# The extended protocol gets one clear 0A000 per batch, then ReadyForQuery at Sync.
$sock = $pw->raw_connect;
$login = raw_login($sock, user => 'admin', database => 'pgwing');
ok($login->{ok}, 'raw console login');
print $sock pg_message('P', "\0SHOW POOLS\0\0\0")
  . pg_message('B', "\0\0\0\0\0\0\0\0")
  . pg_message('E', "\0\0\0\0\0")
  . pg_message('S', '');
my @seen;
while (1)
{
	my ($t, $body) = read_message($sock, 10);
	last unless defined $t;
	push @seen, $t eq 'E' ? "E:" . error_fields($body)->{C} : $t;
	last if $t eq 'Z';
}
is("@seen", 'E:0A000 Z', 'extended protocol: one 0A000, then ReadyForQuery');
print $sock pg_message('Q', "SHOW VERSION\0");
@seen = ();
while (1)
{
	my ($t) = read_message($sock, 10);
	last unless defined $t;
	push @seen, $t;
	last if $t eq 'Z';
}
is("@seen", 'T D C Z', 'then a simple query works on the same connection');
print $sock pg_message('Q', "\0");
my ($t) = read_message($sock, 10);
is($t, 'I', 'an empty query: EmptyQueryResponse');
close $sock;

# PAUSE waits for the open transaction to end.
$session->query_safe('BEGIN');
$session->query_safe('SELECT 1');
my ($pause_out, $pause_err) = ('', '');
my $pause = do
{
	local %ENV = %psql_env;
	IPC::Run::start(
		[
			'psql', '-XAtq', '-d', $pw->connstr(dbname => 'pgwing', user => 'admin'),
			'-c', 'PAUSE'
		],
		'<', \undef, '>', \$pause_out, '2>', \$pause_err);
};
sleep 1;
$pause->pump_nb;
ok($pause->pumpable, 'PAUSE waits while a transaction is open');
(undef, $rows) = show('STATE');
%state = map { $_->{key} => $_->{value} } @$rows;
is($state{paused}, 'all', 'SHOW STATE: paused (all)');
$session->query_safe('COMMIT');
ok(wait_until(sub { $pause->pump_nb; !$pause->pumpable }, 10),
	'PAUSE completes once the transaction ends');
$pause->finish;
is($pause->result(0), 0, 'PAUSE succeeded');

# Paused: three new clients wait; SHOW POOLS says so; RESUME lets them through.
my @waiters;
for my $i (1 .. 3)
{
	my ($o, $e) = ('', '');
	local %ENV = %psql_env;
	my $h = IPC::Run::start(
		[ 'psql', '-XAtq', '-d', $pw->connstr(application_name => "waiter$i"),
			'-c', "SELECT $i" ],
		'<', \undef, '>', \$o, '2>', \$e);
	push @waiters, [ $h, \$o, \$e ];
}
ok( wait_until(sub { my $p = pool_row('postgres'); $p && $p->{cl_waiting} == 3 }),
	'SHOW POOLS: cl_waiting = 3 while paused');
$pool = pool_row('postgres');
is($pool->{cl_held_for}, 'paused', 'SHOW POOLS: cl_held_for = paused');
ok($pool->{maxwait_ms} >= 0, 'SHOW POOLS: maxwait_ms');
(undef, $rows) = show('CLIENTS');
is(scalar(grep { $_->{state} eq 'waiting' } @$rows), 3, 'SHOW CLIENTS: three waiting');
($rc) = console_c('RESUME');
is($rc, 0, 'RESUME');
for my $i (1 .. 3)
{
	my ($h, $o, $e) = @{ $waiters[ $i - 1 ] };
	$h->finish;
	chomp $$o;
	is($$o, $i, "held client $i completes after RESUME");
}
$pool = pool_row('postgres');
is($pool->{cl_waiting}, 0, 'SHOW POOLS: nobody waits after RESUME');

# PAUSE of one database leaves the others alone; RESUME of it ends it.
($rc) = console_c('PAUSE postgres');
is($rc, 0, 'PAUSE postgres (nothing in a transaction: at once)');
(undef, $rows) = show('STATE');
%state = map { $_->{key} => $_->{value} } @$rows;
is($state{paused}, 'postgres', 'SHOW STATE: postgres paused');
($rc) = console_c('RESUME postgres');
is($pw->safe_psql('SELECT 2'), '2', 'queries flow after RESUME postgres');

# KILL_CLIENT closes that client with 57P01.
(undef, $rows) = show('CLIENTS');
($holder) = grep { $_->{application_name} eq 'holder' } @$rows;
($rc, $out, $err) = console_c("KILL_CLIENT $holder->{id}");
is($rc, 0, 'KILL_CLIENT');
eval { $session->query('SELECT 1'); 1 };
$session->{run}->finish;
(undef, $rows) = show('CLIENTS');
ok(!(grep { $_->{application_name} eq 'holder' } @$rows), 'the killed client is gone');
like(slurp_file($pw->logfile), qr/KILL_CLIENT $holder->{id}/, 'the kill is logged');

# KILL of a database closes its clients.
my $victim = $pw->background_psql(application_name => 'victim');
$victim->query_safe('SELECT 1');
($rc) = console_c('KILL postgres');
is($rc, 0, 'KILL postgres');
ok( wait_until(
		sub {
			my (undef, $r) = show('CLIENTS');
			!grep { $_->{application_name} eq 'victim' } @$r;
		}),
	'KILL closed the database\'s clients');
eval { $victim->{run}->finish; };
ok( wait_until(
		sub {
			my (undef, $r) = show('SERVERS');
			!grep { $_->{database} eq 'postgres' } @$r;
		}),
	'KILL closed the database\'s servers, pooled ones too');

$pw->stop;
done_testing();
