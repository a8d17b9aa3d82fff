# log_format = json: every line of the log is one JSON object (time, pid,
# level, message, and the client or server id of the messages that start with
# one), whatever bytes a client puts in what gets logged, so a log shipper
# parses it with a JSON decoder and no regular expression.
use strict;
use warnings;
use JSON::PP;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;

my $node = new_node('primary');
create_role($node, 'alice', 'secret');
my $pw;
$pw = PgWing::Test->new(
	backends  => [ [ primary => $node ] ],
	auth_type => 'md5',
	users     => { alice => 'secret', admin => 'adminpw' },
	# Only pgwing writes this file (sanitizer reports go to stderr, run-tap reads them).
	settings => { log_format => 'json', logfile => "$PostgreSQL::Test::Utils::tmp_check/116_json.log" },
	# -v: the debug lines of every connection, which carry its client id.
	verbose => 1);
my $json_log = $pw->{settings}{logfile};
$pw->start;

# What a client chose, logged before it has authenticated: quotes, a newline,
# controls, a terminal escape, a C1 control, bytes that are not UTF-8, UTF-8.
my @users = ("mal\"lory\n{\"forged\":1}", "bs\\x41\t\e[2K\x7f\x01", "c1\xc2\x9b",
	"bad\xff\xfe\xc0\xaf", "j\xc3\xbcrgen");
for my $user (@users)
{
	my $s = $pw->raw_connect;
	my $r = raw_login($s, user => $user, database => 'postgres', password => 'wrong');
	close $s;
	is($r->{error}{C} // '', '28P01', 'a hostile user name fails to log in');
}
is($pw->safe_psql('SELECT 1', user => 'alice', password => 'secret'), '1', 'a real client works');
$pw->signal('HUP');
ok(wait_for_json(qr/configuration reloaded/), 'a reload is logged');
$pw->stop;

my @lines = split /\n/, slurp_file($json_log), -1;
is(pop @lines, '', 'the file ends with a newline');
ok(@lines > 10, scalar(@lines) . ' lines logged');
my $json = JSON::PP->new->utf8;
my (@bad, @objects);
for my $line (@lines)
{
	my $o = eval { $json->decode($line) };
	if (ref $o ne 'HASH') { push @bad, $line; next; }
	push @objects, $o;
}
is_deeply(\@bad, [], 'every line is one JSON object') or diag explain \@bad;
my @incomplete = grep {
	!(     ($_->{time} // '') =~ /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/
		&& ($_->{pid} // 0) > 1
		&& ($_->{level} // '') =~ /^(ERROR|WARNING|LOG|DEBUG|TRACE)$/
		&& defined $_->{message})
} @objects;
is_deeply(\@incomplete, [], 'each has time (UTC, RFC 3339), pid, level and message')
  or diag explain \@incomplete;

my %failed = map { $_->{message} => $_ } grep { $_->{message} =~ /authentication failed/ } @objects;
sub failed_for
{
	my ($user) = @_;
	my ($o) = grep { index($_, "user \"$user\"") >= 0 } keys %failed;
	return $o;
}
# JSON::PP decodes to characters: compare with what the client sent, decoded.
my $mallory = failed_for("mal\"lory\n{\"forged\":1}");
ok($mallory, 'the quote and the newline come back exactly, inside the message');
ok(!grep({ exists $_->{forged} } @objects), 'no field was forged');
ok(failed_for("bs\\x41\t\e[2K\x7f\x01"), 'backslash, tab, ESC, DEL and C0 controls come back exactly');
ok(failed_for("c1\x{9b}"), 'a C1 control comes back as the character it is');
ok(failed_for("bad\x{fffd}\x{fffd}\x{fffd}\x{fffd}"), 'each byte that is not UTF-8 is U+FFFD');
ok(failed_for("j\x{fc}rgen"), 'UTF-8 comes back as it was sent');
like($failed{$mallory}{client} // '', qr/^\d+$/, 'a client\'s message carries its id as "client"')
  if $mallory;
my ($login) = grep { $_->{message} =~ /login: user=alice/ } @objects;
ok($login && $login->{message} =~ /^client (\d+) / && $login->{client} == $1,
	'the id is the one in the message');
unlike(slurp_file($json_log), qr/[\x00-\x09\x0b-\x1f\x7f]/, 'no raw control character in the file');

# The console's SET switches the format at once; RELOAD goes back to the file's.
$pw->start;
my %admin = (dbname => 'pgwing', user => 'admin', password => 'adminpw');
$pw->safe_psql("SET log_format = 'text'", %admin);
$pw->safe_psql('SET server_lifetime = 3600', %admin);
my @after = split /\n/, slurp_file($json_log);
like($after[-1], qr/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \[\d+\] LOG .*SET server_lifetime/,
	'after SET log_format = text the lines are text');
$pw->safe_psql('RELOAD', %admin);
ok(wait_for_json(qr/\{[^\n]*"message":"configuration reloaded[^\n]*\}\n\z/),
	'RELOAD: JSON again, as the file says');
$pw->stop;

sub wait_for_json
{
	my ($re) = @_;
	my $deadline = time() + time_bound(10);
	while (time() < $deadline)
	{
		return 1 if -f $json_log && slurp_file($json_log) =~ $re;
		select(undef, undef, undef, 0.05);
	}
	return 0;
}

done_testing();
