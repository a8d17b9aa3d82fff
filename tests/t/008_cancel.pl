# Cancelling a running query (psql's Ctrl-C sends a CancelRequest to pgwing)
# stops it on the server within a second, on the rw and the ro port; a
# CancelRequest with a wrong key cancels nothing.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;
use Time::HiRes qw(time usleep);

my $node = new_node('primary');
my $pw = PgWing::Test->new(backends => [ [ primary => $node ] ], auth_type => 'trust');
$pw->start;

sub wait_active
{
	my ($app) = @_;
	return $node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = '$app' "
		  . "AND state = 'active' AND query LIKE '%pg_sleep%'");
}

for my $target (qw(rw ro))
{
	my $app = "cancel_$target";
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[ 'psql', '-XAtq', '-d', $pw->connstr(target => $target, application_name => $app),
			'-c', '\set VERBOSITY verbose', '-c', 'SELECT pg_sleep(60)' ],
		'<', '/dev/null', '>', \$out, '2>', \$err, IPC::Run::timeout(90));
	ok(wait_active($app), "$target: pg_sleep(60) running on the server");

	# A CancelRequest with a made-up key must not touch it.
	my $s = $pw->raw_connect(target => $target);
	print $s pack('N N N N', 16, 80877102, 12345, 67890);
	my ($t, $why) = read_message($s, 5);
	is($why, 'eof', "$target: bogus CancelRequest: connection closed without reply");
	close $s;
	usleep(500_000);
	ok(wait_active($app), "$target: bogus CancelRequest cancelled nothing");

	my $t0 = time;
	$h->signal('INT');
	eval { $h->finish };
	my $elapsed = time - $t0;
	my $cancelled = $err =~ /57014: canceling statement due to user request/;
	ok($cancelled, "$target: query cancelled with 57014") or diag $err;
	ok($cancelled && $elapsed < time_bound(1.0), "$target: cancel took effect within 1 s")
	  or diag sprintf('took %.2f s', $elapsed);
	note sprintf('%s: cancel took %.3f s', $target, $elapsed);
	is( $node->safe_psql('postgres',
			"SELECT count(*) FROM pg_stat_activity WHERE application_name = '$app' AND state = 'active'"),
		'0',
		"$target: nothing left running on the server");
}

# Raw protocol: the BackendKeyData pgwing hands out cancels this session's
# query, and the session stays usable.
my $sock = $pw->raw_connect;
my $login = raw_login($sock, params => { application_name => 'cancel_raw' });
ok($login->{ok} && defined $login->{key}, 'raw session has a cancel key');
print $sock pg_message('Q', "SELECT pg_sleep(60)\0");
ok(wait_active('cancel_raw'), 'raw session sleeping');
my $t0 = time;
my $c = $pw->raw_connect;
print $c pack('N N N N', 16, 80877102, $login->{pid}, $login->{key});
my ($type, $body);
do { ($type, $body) = read_message($sock, 10); } while (defined $type && $type eq 'T');
my $elapsed = time - $t0;
is($type, 'E', 'raw session gets an ErrorResponse (after RowDescription)');
is(defined $type && $type eq 'E' ? error_fields($body)->{C} : undef, '57014', '... with 57014');
ok($elapsed < time_bound(1.0), 'raw cancel within 1 s') or diag "took $elapsed s";
($type) = read_message($sock, 10);
is($type, 'Z', 'then ReadyForQuery');
print $sock pg_message('Q', "SELECT 7\0");
my @types;
do { ($type, $body) = read_message($sock, 10); push @types, $type // "($body)"; }
  while (defined $type && $type ne 'Z');
is(join('', @types), 'TDCZ', 'the cancelled session runs the next query');

# The pid handed out is pgwing's number for the client, not the server's: a
# kill with it names no backend (Postgres warns, answers false), and the
# session goes on (doc/config.md, "What a move keeps").
my $raw_query = sub {
	my ($sql) = @_;
	print $sock pg_message('Q', "$sql\0");
	my %r = (types => '');
	while (my ($type, $body) = read_message($sock, 10))
	{
		$r{types} .= $type;
		$r{row} = (unpack('n N/a*', $body))[1] if $type eq 'D';
		$r{notice} = error_fields($body)->{M} if $type eq 'N';
		last if $type eq 'Z';
	}
	return \%r;
};
my $server_pid = $raw_query->('SELECT pg_backend_pid()')->{row};
isnt($server_pid, $login->{pid}, 'pg_backend_pid() is the server\'s, not the BackendKeyData pid');
my $kill = $raw_query->("SELECT pg_terminate_backend($login->{pid})");
is($kill->{row}, 'f', 'pg_terminate_backend(the BackendKeyData pid) kills nothing');
like($kill->{notice} // '', qr/is not a PostgreSQL backend process/, "... with Postgres's warning");
is($raw_query->('SELECT pg_backend_pid()')->{row}, $server_pid, '... and the session goes on');
close $c;
close $sock;

$pw->stop;
done_testing();
