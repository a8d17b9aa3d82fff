# LISTEN in one client, NOTIFY from another, both through pgwing: the
# notification arrives at the idle listener by itself. A session's own
# NOTIFY names the pid the session was given in BackendKeyData, as it does
# directly, so apps can skip their own notifications (#19 item 17).
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;

my $node = new_node('primary');
my $pw = PgWing::Test->new(backends => [ [ primary => $node ] ], auth_type => 'trust');
$pw->start;

sub query_until_ready
{
	my ($s, $sql) = @_;
	print $s pg_message('Q', "$sql\0");
	my @types;
	while (1)
	{
		my ($t, $b) = read_message($s);
		push @types, $t // "($b)";
		last if !defined $t || $t eq 'Z';
	}
	return join '', @types;
}

my $listener = $pw->raw_connect;
my $login = raw_login($listener);
ok($login->{ok}, 'listener logged in');
is(query_until_ready($listener, 'LISTEN wing_chan'), 'CZ', 'LISTEN acknowledged');
my $listener_pid = $pw->safe_psql('SELECT pid FROM pg_stat_activity WHERE query = \'LISTEN wing_chan\'');

# The session's own notification: the pid it was told at login.
print $listener pg_message('Q', "NOTIFY wing_chan, 'mine'\0");
my ($own_pid, @own_types);
while (1)
{
	my ($t, $b) = read_message($listener);
	push @own_types, $t // "($b)";
	$own_pid = unpack('N', $b) if defined $t && $t eq 'A';
	last if !defined $t || $t eq 'Z';
}
is(join('', @own_types), 'CAZ', 'own NOTIFY: delivered to the session itself');
is($own_pid, $login->{pid}, 'own NOTIFY: it names the pid the session was given (BackendKeyData)');

# Notify from a second client through pgwing.
$pw->safe_psql("NOTIFY wing_chan, 'hello through pgwing'");
my ($t, $b) = read_message($listener, 10);
is($t, 'A', 'idle listener receives a NotificationResponse without sending anything');
if (defined $t && $t eq 'A')
{
	my ($pid, $rest) = unpack('N a*', $b);
	my ($chan, $payload) = split /\0/, $rest;
	isnt($pid, $login->{pid}, "another session's NOTIFY names another pid");
	is($chan,    'wing_chan',            'channel name');
	is($payload, 'hello through pgwing', 'payload');
}

# Two notifications in one transaction, delivered at commit, in order.
$pw->safe_psql("BEGIN; NOTIFY wing_chan, 'one'; NOTIFY wing_chan, 'two'; COMMIT;");
my @payloads;
for (1 .. 2)
{
	my ($t2, $b2) = read_message($listener, 10);
	last unless defined $t2 && $t2 eq 'A';
	push @payloads, (split /\0/, substr($b2, 4))[1];
}
is_deeply(\@payloads, [ 'one', 'two' ], 'transactional notifications arrive in order');

# psql as the listener: notifications are shown after the next command.
my $bg = $pw->background_psql;
$bg->query_safe('LISTEN psql_chan');
$pw->safe_psql("NOTIFY psql_chan, 'to psql'");
sleep 1;
my $out = $bg->query_safe('SELECT 1');
like($out, qr/Asynchronous notification "psql_chan" with payload "to psql" received/,
	'psql listener sees the notification');
$bg->quit;

is(query_until_ready($listener, 'UNLISTEN *'), 'CZ', 'UNLISTEN');
print $listener pg_message('X');
close $listener;
$pw->stop;
done_testing();
