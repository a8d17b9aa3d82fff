# Signals: SIGHUP reloads the auth file; SIGTERM stops taking new clients but
# lets connected ones finish their transactions, then exits (111_drain.pl tests
# the drain in full); SIGINT ends sessions with 57P01 and exits at once.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;
use Time::HiRes qw(sleep time);

my $node = new_node('primary');
create_role($node, 'alice', 'alice-pw');
create_role($node, 'carol', 'carol-pw');
set_hba($node, 'scram-sha-256');
my $pw = PgWing::Test->new(backends => [ [ primary => $node ] ],
	auth_type => 'scram-sha-256', users => { alice => 'alice-pw' });
$pw->start;

sub wait_gone
{
	my $deadline = time + time_bound(shift);
	while (time < $deadline)
	{
		return 1 unless $pw->alive;
		sleep 0.05;
	}
	return !$pw->alive;
}

# SIGHUP: a user added to the auth file can log in after the reload.
my $r = raw_login($pw->raw_connect, user => 'carol', password => 'carol-pw');
is($r->{error}{C}, '28P01', 'carol unknown before the reload');
$pw->set_users({ alice => 'alice-pw', carol => 'carol-pw' });
$pw->write_config;
my $off = $pw->log_position;
$pw->signal('HUP');
ok($pw->wait_for_log(qr/reloaded/i, $off), 'reload logged');
is($pw->safe_psql('SELECT current_user', user => 'carol', password => 'carol-pw'),
	'carol', 'carol logs in after SIGHUP');
is($pw->safe_psql('SELECT current_user', user => 'alice', password => 'alice-pw'),
	'alice', 'alice still logs in');

# SIGTERM: drain.
my $held = $pw->raw_connect;
ok(raw_login($held, user => 'alice', password => 'alice-pw')->{ok}, 'a session is held');
print $held pg_message('Q', "BEGIN\0");
my ($bt, $bb);
do { ($bt, $bb) = read_message($held, 10) } until !defined $bt || $bt eq 'Z';
is($bb, 'T', 'the held session is in a transaction');
$pw->signal('TERM');
sleep 0.5;
ok($pw->alive, 'after SIGTERM pgwing waits for the held session');
my $refused = !IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $pw->rw_port,
	Proto => 'tcp', Timeout => 5)
  || $pw->psql('SELECT 1', user => 'alice', password => 'alice-pw', timeout => 10) != 0;
ok($refused, 'after SIGTERM new clients are not served');
print $held pg_message('Q', "SELECT 'still here'\0");
my @types;
while (1)
{
	my ($t, $b) = read_message($held, 10);
	push @types, $t // "($b)";
	last if !defined $t || $t eq 'Z';
}
is(join('', @types), 'TDCZ', 'the held session still runs queries during the drain');
print $held pg_message('X');
close $held;
ok(wait_gone(5), 'pgwing exits once the last client left');
is($pw->exit_status, 0, 'exit code 0 after SIGTERM drain');

# SIGINT: fast stop, sessions told why.
$pw->start;
$held = $pw->raw_connect;
ok(raw_login($held, user => 'alice', password => 'alice-pw')->{ok}, 'a session is held');
$pw->signal('INT');
my ($t, $b) = read_message($held, 5);
is($t, 'E', 'SIGINT: the held session gets an ErrorResponse');
is(defined $t && $t eq 'E' ? error_fields($b)->{C} : undef, '57P01', '... 57P01 admin shutdown');
ok(wait_gone(5), 'SIGINT: pgwing exits at once');
is($pw->exit_status, 0, 'exit code 0 after SIGINT');

done_testing();
