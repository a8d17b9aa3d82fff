# Protocol garbage from a client -- junk instead of a startup packet, a
# truncated packet, lengths that are too big or too small, bad messages after
# login -- gets an ErrorResponse (08P01) or a clean close, quickly; pgwing keeps
# serving everyone else.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;
use Time::HiRes qw(time);

my $node = new_node('primary');
my $pw = PgWing::Test->new(
	backends  => [ [ primary => $node ] ],
	auth_type => 'trust',
	settings  => { max_packet_size => '1MB', client_login_timeout => '3s' });
$pw->start;

# A well-behaved session held open through all of this.
my $bystander = $pw->background_psql(application_name => 'bystander');
is($bystander->query_safe('SELECT 1'), '1', 'bystander session up');

# Send $bytes on a fresh socket (optionally half-closing it), and return
# ('error', $fields) / ('close') / ('timeout') / ('other', $type), and the time it took.
sub poke
{
	my ($bytes, %o) = @_;
	my $s = $o{sock} // $pw->raw_connect;
	my $t0 = time;
	syswrite($s, $bytes) if length $bytes;
	shutdown($s, 1) if $o{half_close};
	my @seen;
	while (1)
	{
		my ($t, $b) = read_message($s, $o{timeout} // 8);
		if (!defined $t)
		{
			close $s;
			return ($b eq 'eof' ? 'close' : $b, time - $t0, \@seen);
		}
		push @seen, $t;
		if ($t eq 'E')
		{
			my $f = error_fields($b);
			# After an error the connection must be closed.
			my ($t2, $b2) = read_message($s, 5);
			close $s;
			return ('error', time - $t0, $f, $t2 // $b2);
		}
		next if $o{skip_ready} && $t =~ /^[RSKZNTDC]$/;
		close $s;
		return ('other', time - $t0, $t);
	}
}

sub error_or_close
{
	my ($what, $res, $elapsed, $f, $after, $codes) = @_;
	$codes //= qr/^08P01$/;
	if ($res eq 'error')
	{
		like($f->{C}, $codes, "$what: ErrorResponse $f->{C} ($f->{M})");
		is($after, 'eof', "$what: connection closed after the error");
	}
	else
	{
		is($res, 'close', "$what: connection closed (no error message)");
		pass("$what: nothing else sent");
	}
	cmp_ok($elapsed, '<', time_bound(2.5), "$what: answered at once, not by the login timeout");
	ok($pw->alive, "$what: pgwing alive");
	return;
}

my @r;
@r = poke("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
error_or_close('HTTP request instead of startup', @r);

@r = poke(join('', map { chr(int(rand(256))) } 1 .. 512));
error_or_close('512 random bytes', @r);

@r = poke(pack('N N', 8, 0x12345678));
error_or_close('unknown protocol version', @r, qr/^(08P01|0A000)$/);

@r = poke(pack('N', 0x7fffffff) . pack('N', 196608) . "user\0x\0");
error_or_close('startup length 2 GB', @r);

@r = poke(pack('N', 2) . "xx");
error_or_close('startup length 2 (below the header)', @r);

@r = poke(pack('N', 4 << 20) . pack('N', 196608) . "user\0x\0");
error_or_close('startup length 4 MB, over max_packet_size', @r);

# A client that connects and says Terminate before any startup packet (as
# node-postgres may): Postgres closes without a word, and so does pgwing; an
# error would fail the client's connect(), which asked for nothing.
@r = poke(pg_message('X'));
is($r[0], 'close', 'Terminate before the startup packet: closed without a message');
cmp_ok($r[1], '<', time_bound(2.5), 'Terminate before the startup packet: closed at once');

# A bad startup length is a protocol violation Postgres only logs: it closes in silence.
@r = poke(pack('N', 2) . "xx");
is($r[0], 'close', 'startup length 2: closed without a message, as Postgres');

my $startup = startup_packet(user => os_user(), database => 'postgres');
@r = poke(substr($startup, 0, 12), half_close => 1);
error_or_close('truncated startup then EOF', @r, qr/^(08P01|08006)$/);

my $unterminated = pack('N', 196608) . "user\0" . os_user();
@r = poke(pack('N', 4 + length $unterminated) . $unterminated);
error_or_close('startup with unterminated parameters', @r, qr/^(08P01|28000)$/);

# A truncated startup that just stalls is cut off by client_login_timeout.
@r = poke(substr($startup, 0, 12), timeout => 10);
is($r[0] eq 'error' ? 'error' : $r[0], $r[0] eq 'error' ? 'error' : 'close',
	'stalled truncated startup: error or close');
cmp_ok($r[1], '<', time_bound(6), 'stalled truncated startup: dropped by client_login_timeout (3 s)');
cmp_ok($r[1], '>', 2, 'stalled truncated startup: not before the timeout');

# After login.
sub logged_in
{
	my $s = $pw->raw_connect;
	my $res = raw_login($s, params => { application_name => 'badproto' });
	die "login failed" unless $res->{ok};
	return $s;
}

@r = poke('Q' . pack('N', 2 << 20) . 'SELECT 1', sock => logged_in());
error_or_close('Query message of 2 MB, over max_packet_size', @r, qr/^(08P01|54000)$/);

@r = poke('Q' . pack('N', 2), sock => logged_in());
error_or_close('message length 2', @r);

@r = poke('Q' . pack('N', 0xffffffff), sock => logged_in());
error_or_close('message length 4 GB', @r, qr/^(08P01|54000)$/);

@r = poke(pg_message('z', 'garbage'), sock => logged_in());
error_or_close('unknown message type', @r);

@r = poke(substr(pg_message('Q', "SELECT 1\0"), 0, 7), sock => logged_in(), half_close => 1);
is($r[0] eq 'error' || $r[0] eq 'close' ? 'ok' : $r[0], 'ok', 'truncated Query then EOF: error or close');

# The servers of all those sessions are gone.
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name = 'badproto'"),
	'no server session left behind by the bad clients');

is($bystander->query_safe('SELECT 2'), '2', 'bystander session still works');
$bystander->quit;
is($pw->safe_psql('SELECT 3'), '3', 'new clients still served');
$pw->stop;
done_testing();
