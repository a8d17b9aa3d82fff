# Every malformed message at every protocol state. States: before the startup
# packet, in the SCRAM, md5 and cleartext password exchanges, logged in and
# idle, inside a transaction, in an extended-protocol batch, in COPY FROM
# STDIN, on the admin console. (SCRAM at both of its client steps.) Messages: unknown type bytes, every frontend
# type with an empty, a truncated and a garbage body, backend-only types,
# lengths below 4 and above max_packet_size.
#
# Each gets an ErrorResponse with a fitting SQLSTATE (pgwing's 08P01, or what
# Postgres answers, relayed), or a clean close, or -- where Postgres itself
# ignores the message, e.g. CopyData outside COPY -- nothing, with the session
# still answering afterwards. Never a hang, never a crash: a bystander session
# answers after every case, a fresh psql after every state, and pgwing's log
# has no sanitizer report.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;
use Time::HiRes qw(time);

my $node = new_node('primary');
create_role($node, 'alice', 'secret');
create_role($node, 'admin', 'adminpw');
$node->safe_psql('postgres', 'CREATE TABLE copy_target (a int); '
	  . 'GRANT ALL ON copy_target TO alice');

# One pgwing per client authentication method; the SCRAM one serves the
# logged-in states and the console.
my %common = (max_packet_size => '1MB', client_login_timeout => '5s');
my %pw;
for my $auth (qw(scram-sha-256 md5 plain))
{
	$pw{$auth} = PgWing::Test->new(
		name      => $auth =~ s/\W//gr,
		backends  => [ [ primary => $node ] ],
		auth_type => $auth,
		users     => { alice => 'secret', admin => 'adminpw' },
		settings  => \%common);
	$pw{$auth}->start;
}
my $pw = $pw{'scram-sha-256'};
my $bystander = $pw->background_psql(user => 'alice', password => 'secret', timeout => 1800);

# The messages.
my @frontend     = qw(B C d c f D E H F p P Q S);
my @backend_only = qw(R K Z T 1 2 3 A G I N n s t V v W);
my @cases;
push @cases, [ sprintf('unknown type 0x%02x', ord $_), pg_message($_, "garbage\0") ]
  for ("\0", 'z', "\xff");
for my $t (@frontend)
{
	push @cases, [ "'$t' empty body",     pg_message($t, '') ];
	push @cases, [ "'$t' truncated body", pg_message($t, "\x01") ];
	push @cases, [ "'$t' garbage body", pg_message($t, "\xff\xfe\0\0\0\x07gar\xc3\x28bage") ];
}
push @cases, [ "'X' with a body", pg_message('X', 'junk') ];
push @cases, [ "backend-only '$_'", pg_message($_, "\0\0\0\0") ] for @backend_only;
push @cases, [ "length $_", 'Q' . pack('N', $_) . "SELECT 1\0" ] for 0 .. 3;
push @cases, [ "'$_' length over max_packet_size", $_ . pack('N', 2 << 20) . 'SELECT 1' ]
  for qw(Q d p);
push @cases, [ 'length 4 GB', 'Q' . pack('N', 0xffffffff) ];

# The states: how to get there, the SQLSTATEs that fit, and how to tell the
# session still works when the message was ignored (undef: it must not be).
my $pre_login = qr/^(08P01|28P01|28000|0A000|54000)$/;
my $postgres  = qr/^(08P01|0A000|22...|26000|34000|42...|54000)$/;
my %login = (user => 'alice', password => 'secret');
my @states = (
	[ 'before startup', $pw, sub { $_[0]->raw_connect }, $pre_login, undef ],
	[ 'SCRAM exchange', $pw, sub { auth_started($_[0], 10) }, $pre_login, undef ],
	[ 'SCRAM exchange, second step', $pw, \&scram_second_step, $pre_login, undef ],
	[ 'md5 exchange', $pw{md5}, sub { auth_started($_[0], 5) }, $pre_login, undef ],
	[ 'cleartext exchange', $pw{plain}, sub { auth_started($_[0], 3) }, $pre_login, undef ],
	[ 'logged in, idle', $pw, sub { logged_in($_[0]) }, $postgres, [ 'S', 'SELECT 1' ] ],
	[ 'in a transaction', $pw, sub { logged_in($_[0], 'BEGIN') }, $postgres,
		[ 'S', 'ROLLBACK; SELECT 1' ] ],
	[ 'extended batch (Parse, Bind, no Sync)', $pw, \&in_batch, $postgres,
		[ 'S', 'SELECT 1' ] ],
	[ 'COPY FROM STDIN', $pw, sub { logged_in($_[0], 'COPY copy_target FROM STDIN') },
		$postgres, [ 'c', 'SELECT 1' ] ],
	[ 'admin console', $pw, sub { logged_in($_[0], undef, 'pgwing') },
		qr/^(08P01|0A000|42...|22...|54000)$/, [ 'S', 'SHOW VERSION' ] ]);

# Start a login and stop at the password request with this code.
sub auth_started
{
	my ($p, $code) = @_;
	my $s = $p->raw_connect;
	print $s startup_packet(user => 'alice', database => 'postgres');
	my ($t, $b) = read_message($s, 10);
	die "expected auth request $code, got " . ($t // $b)
	  unless defined $t && $t eq 'R' && unpack('N', $b) == $code;
	return $s;
}

# SCRAM past the client-first message: pgwing waits for the client-final one.
sub scram_second_step
{
	my ($p) = @_;
	my $s = auth_started($p, 10);
	my $first = 'n,,n=,r=' . join('', map { chr(65 + int(rand(26))) } 1 .. 24);
	print $s pg_message('p', "SCRAM-SHA-256\0" . pack('N', length $first) . $first);
	my ($t, $b) = read_message($s, 10);
	die 'expected SASLContinue, got ' . ($t // $b)
	  unless defined $t && $t eq 'R' && unpack('N', $b) == 11;
	return $s;
}

# Log in (as admin to the console), optionally run a query and read to its
# end (ReadyForQuery, or CopyInResponse).
sub logged_in
{
	my ($p, $sql, $db) = @_;
	my $s = $p->raw_connect;
	my $r = raw_login($s, $db ? (user => 'admin', password => 'adminpw', database => $db)
		: %login);
	die 'login failed: ' . explain($r) unless $r->{ok};
	return $s unless defined $sql;
	print $s pg_message('Q', "$sql\0");
	while (1)
	{
		my ($t, $b) = read_message($s, 10);
		die "$sql: " . ($t // $b) if !defined $t || $t eq 'E';
		return $s if $t eq 'Z' || $t eq 'G';
	}
}

sub in_batch
{
	my ($p) = @_;
	my $s = logged_in($p);
	print $s pg_message('P', "\0SELECT 1\0\0\0") . pg_message('B', "\0\0" . pack('n n n', 0, 0, 0));
	return $s;
}

# Send the case and classify what comes back: ('error', code), ('close'),
# ('ignored') when the probe ($sync then $sql) still gets its row, or
# ('hang', what was seen).
sub run_case
{
	my ($s, $bytes, $probe) = @_;
	local $SIG{PIPE} = 'IGNORE';
	syswrite($s, $bytes);
	if ($probe)
	{
		my ($sync, $sql) = @$probe;
		syswrite($s, pg_message($sync) . pg_message('Q', "$sql\0"));
	}
	my ($code, @seen, $got_row);
	my $deadline = time + time_bound(5);
	while (time < $deadline)
	{
		my ($t, $b) = read_message($s, $deadline - time);
		last if !defined $t && $b eq 'timeout';
		if (!defined $t)
		{
			close $s;
			return defined $code ? ('error', $code) : ('close');
		}
		push @seen, $t;
		$code //= error_fields($b)->{C} if $t eq 'E';
		$got_row = 1 if $t eq 'D';
		if ($t eq 'Z' && $got_row)
		{
			close $s;
			return defined $code ? ('error', $code) : ('ignored');
		}
	}
	close $s;
	return ('hang', join(',', @seen));
}

for my $st (@states)
{
	my ($state, $p, $enter, $codes, $probe) = @$st;
	my %outcomes;
	for my $c (@cases)
	{
		my ($name, $bytes) = @$c;
		my $s = $enter->($p);
		my ($res, $detail) = run_case($s, $bytes, $probe);
		my $fine =
		    $res eq 'error'   ? $detail =~ $codes
		  : $res eq 'close'   ? 1
		  : $res eq 'ignored' ? defined $probe
		  :                     0;
		ok($fine && $p->alive, "$state / $name: $res" . (defined $detail ? " $detail" : ''));
		$outcomes{ $res . (defined $detail && $res eq 'error' ? " $detail" : '') }++;
		last unless $p->alive;
		is($bystander->query_safe('SELECT 1'), '1', "$state / $name: bystander answers")
		  if $p == $pw;
	}
	note "$state: " . join(', ', map { "$_ x$outcomes{$_}" } sort keys %outcomes);
	is($p->safe_psql('SELECT 1', %login), '1', "$state: a new client is served");
}

$bystander->quit;
for my $p (values %pw)
{
	unlike($p->log_content, qr/AddressSanitizer|LeakSanitizer|runtime error:/,
		'no sanitizer report in the log of pgwing ' . $p->name);
	$p->stop;
}
done_testing();
