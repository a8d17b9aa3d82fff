# Sessions that share servers and prepare the same statements (every
# connection of an app, a driver's statement cache, pgbench -M prepared) hand a
# server over without a reset and without preparing again: the statement the
# server holds under the same name and text is the one the next session uses
# (its prepare_time does not change). Each session still sees only its own
# statements: what the server holds that a session lacks is closed before it
# runs, a name it prepared with another text is prepared again, and a session
# whose Parse failed leaves its server to be reset.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;

my $node = new_node('primary');
# One server: the two clients of the test take turns on it.
my $pw = PgWing::Test->new(
	backends  => [ [ primary => $node ] ],
	auth_type => 'trust',
	settings  => { default_pool_size => 1, reserve_pool_size => 0 });
$pw->start;

sub login
{
	my $sock = $pw->raw_connect;
	ok(raw_login($sock)->{ok}, 'an extended-protocol client logged in');
	return $sock;
}

sub parse { my ($name, $sql) = @_; return pg_message('P', "$name\0$sql\0\0\0"); }

# Bind and run the named statement, one row back.
sub run_named
{
	my ($sock, $name) = @_;
	my @got = raw_exchange($sock, 1, pg_message('B', "\0$name\0\0\0\0\0\0\0"),
		pg_message('E', "\0\0\0\0\0"), pg_message('S'));
	my @err = grep { $_->[0] eq 'E' } @got;
	return @err ? 'ERROR ' . error_fields($err[0][1])->{C} : join ',', data_rows(@got);
}

sub query { my ($sock, $sql) = @_; return join ',', data_rows(raw_exchange($sock, 1, query_message($sql))); }

sub statements_of
{
	my ($sock) = @_;
	return query($sock,
		q{SELECT coalesce(string_agg(name || '=' || statement, ';' ORDER BY name), '')
		  FROM pg_prepared_statements});
}

sub prepared_at
{
	my ($sock, $name) = @_;
	return query($sock, "SELECT prepare_time FROM pg_prepared_statements WHERE name = '$name'");
}

# (a) Two sessions take turns on one backend with the same statement.
my $a = login();
raw_exchange($a, 1, parse('s1', 'SELECT pg_backend_pid()'), pg_message('S'));
my $pid = run_named($a, 's1');
like($pid, qr/^\d+$/, 'session A ran its prepared statement');
my $b = login();
raw_exchange($b, 1, parse('s1', 'SELECT pg_backend_pid()'), pg_message('S'));
is(run_named($b, 's1'), $pid, 'session B got the same backend (one server)');
# B had the server from its login: what A held there was closed, B prepared its own.
my $prepared = prepared_at($b, 's1');
for my $round (1 .. 3)
{
	is(run_named($a, 's1'), $pid, "round $round: A runs its statement on the shared backend");
	is(run_named($b, 's1'), $pid, "round $round: B too");
}
is(prepared_at($a, 's1'), $prepared,
	'the statement was not prepared again at the hand-overs: A uses the one the server holds');
is(prepared_at($b, 's1'), $prepared, 'and so does B');
is(statements_of($b), 's1=SELECT pg_backend_pid()', 'B sees only its own statement');

# (b) The same name under another text: each session runs its own.
raw_exchange($b, 1, pg_message('C', "Ss1\0"), parse('s1', "SELECT 'b-text'"), pg_message('S'));
is(run_named($b, 's1'), 'b-text', 'B prepared s1 again under another text');
is(run_named($a, 's1'), $pid, 'A, handed the server, runs its own s1');
is(statements_of($a), 's1=SELECT pg_backend_pid()', 'A sees only its own s1');
is(run_named($b, 's1'), 'b-text', 'B, handed it back, runs its own s1');

# (c) A session without statements is handed a server that holds some.
print $a pg_message('X');
close $a;
my $c = login();
is(statements_of($c), '', 'a new session sees no statement its server held for others');
raw_exchange($c, 1, parse('s1', 'SELECT 42'), pg_message('S'));
is(run_named($c, 's1'), '42', 'it prepares the same name without 42P05');

# (d) Given back with its statements only, the server is not reset.
print $c pg_message('X');
close $c;
is($pw->last_query_of_pooled($node, $pid), 'SELECT 42',
	'a session with prepared statements only: its server is pooled without a reset');
print $b pg_message('X');
close $b;

# (e) A failed Parse: the server is reset before the next session has it.
my $d = login();
my @got = raw_exchange($d, 1, parse('bad', 'SELEC 1'), pg_message('S'));
is(error_fields((grep { $_->[0] eq 'E' } @got)[0][1])->{C}, '42601', 'a Parse that fails');
print $d pg_message('X');
close $d;
is($pw->last_query_of_pooled($node, $pid), 'DISCARD ALL', 'after a failed Parse the server is reset');
my $e = login();
is(statements_of($e), '', 'the next session sees no statement');
print $e pg_message('X');
close $e;

# (g) Settings. A session that only SETs and reads goes back without a reset;
# the next session on that server with other settings (or none) has them reset
# first (its role too: RESET ALL alone keeps SET ROLE), one with the same keeps
# them as they are.
$node->safe_psql('postgres',
	'CREATE ROLE low; CREATE SCHEMA s1; CREATE TABLE s1.t AS SELECT 1 AS x');
my $me   = $pw->safe_psql('SELECT current_user');
my $view = q{SELECT pg_backend_pid() || ' ' || current_user || ' ' || current_setting('search_path')};
my $sa = $pw->background_psql;
$sa->query_safe("SET search_path = s1, public; SET ROLE low");
my $spid = $sa->query_safe('SELECT pg_backend_pid()');
$sa->quit;
like($pw->last_query_of_pooled($node, $spid), qr/^SELECT pg_backend_pid\(\)/,
	'a session with settings only: its server is pooled without a reset');
my $sb = $pw->background_psql;
is($sb->query_safe($view), "$spid $me \"\$user\", public",
	'the next session on that backend has the defaults, its login role too');
is($sb->query_safe('SELECT count(*) FROM pg_prepared_statements'), '0', 'and no statement');
$sb->query_safe("SET search_path = s1, public");
my $sc = $pw->background_psql;
$sc->query_safe("SET search_path = s1, public");
is($sc->query_safe("$view || ' ' || (SELECT x FROM t)"), "$spid $me s1, public 1",
	'sessions with the same settings take turns on the backend');
is($sb->query_safe("$view || ' ' || (SELECT x FROM t)"), "$spid $me s1, public 1",
	'as they are');
$sc->query_safe("SET ROLE low");
is($sb->query_safe($view), "$spid $me s1, public",
	'after another session\'s SET ROLE on that backend, a session runs as its own role');
is($sc->query_safe($view), "$spid low s1, public", 'and that one as its role');
$sb->query_safe('RESET ALL');
is($sb->query_safe($view), "$spid $me \"\$user\", public", 'RESET ALL, then a hand-over');
$sb->quit;
$sc->quit;

# (f) Two apps with a statement of the same name and another text (pgbench
# names a script's first statement P0_0), eight clients taking turns on the
# one server: the hand-overs between them close one text and prepare the
# other. A client that ran the other app's statement would divide by zero.
my $dir = PostgreSQL::Test::Utils::tempdir;
my @apps;
for my $v (1, 2)
{
	my $script = "$dir/app$v.sql";
	open my $fh, '>', $script or die "$script: $!";
	print $fh "SELECT $v AS v \\gset\n\\if :v != $v\nSELECT 1/0;\n\\endif\n";
	close $fh;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[ 'pgbench', '-n', '-M', 'prepared', '-c', 4, '-j', 4, '-t', 100, '-f', $script,
			$pw->connstr ],
		'<', \undef, '>', \$out, '2>', \$err, IPC::Run::timeout(time_bound(120)));
	push @apps, [ $v, $h, \$out, \$err ];
}
for my $app (@apps)
{
	my ($v, $h, $out, $err) = @$app;
	$h->finish;
	like($$out, qr{number of transactions actually processed: 400/400},
		"app $v: all 400 transactions ran their own statement") or diag $$err;
}

$pw->stop;
done_testing();
