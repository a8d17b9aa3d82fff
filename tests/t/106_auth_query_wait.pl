# auth_query while the database is away: a login whose lookup finds the
# primary asleep wakes it and goes on once it is up (the lookup being the
# first thing that needs it); a database that stays down fails the login at
# hold_timeout with 08006 and the reason, not with a password error.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;
use Time::HiRes qw(time usleep);

my $node = auth_query_node('pg1', dana => 'dana-pw');
my $datadir = $node->data_dir;
my $pglog   = $node->logfile;
my $script  = "$PostgreSQL::Test::Utils::tmp_check/106_wake.sh";
open my $fh, '>', $script or die "write $script: $!";
print $fh "#!/bin/sh\nexec pg_ctl -D '$datadir' -l '$pglog' -w start\n";
close $fh;
chmod 0755, $script;

my $pw = PgWing::Test->new(
	backends  => [ [ pg1 => $node, wake => "exec:\"$script\"" ] ],
	auth_user => [ pgwing_auth => 'auth-pw' ],
	settings  => {
		health_interval     => '300ms',
		server_idle_timeout => '1s',
		hold_timeout        => time_bound(30) . 's',
	});
$pw->start;

# Unused, the backend goes to sleep; then the "machine" stops.
ok($pw->wait_for_log(qr/backend pg1: up -> asleep/, 0, 20),
	'the unused backend is asleep');
$node->stop;

# dana was never looked up: the lookup needs the database, and wakes it.
my $pos = $pw->log_position;
my $t0  = time();
is($pw->safe_psql('SELECT current_user', user => 'dana', password => 'dana-pw'),
	'dana', 'a login whose lookup finds the database asleep goes on once it woke');
note(sprintf('login through wake and lookup: %.2f s', time() - $t0));
ok($pw->log_contains(qr/backend pg1: wake command started/, $pos),
	'the lookup woke the backend');
$pw->stop;

# No wake, and the database stays down: the login is held up to
# hold_timeout, then told why in 08006 (a wrong password it is not). The wake
# command started the node behind the Cluster object's back: stop it as it
# was started.
system_or_bail('pg_ctl', '-D', $datadir, '-m', 'fast', '-w', 'stop');
my $hold_s = time_bound(2);
my $pw2 = PgWing::Test->new(
	name      => 'down',
	backends  => [ [ pg1 => $node ] ],
	auth_user => [ pgwing_auth => 'auth-pw' ],
	settings  => {
		health_interval => '300ms',
		hold_timeout    => "${hold_s}s",
	});
$pw2->start;
$t0 = time();
my $r = raw_login($pw2->raw_connect, user => 'dana', password => 'dana-pw',
	timeout => 10 * $hold_s);
my $held = time() - $t0;
is($r->{error}{C}, '08006', 'a lookup that never answers ends in 08006')
  or diag explain $r;
like($r->{error}{M}, qr/could not look up the password of user "dana" after \d+ s \(.+\)/,
	'saying the lookup failed and why');
cmp_ok($held, '>=', $hold_s - 0.2, 'after hold_timeout, not before');
ok(!$r->{auth}, 'without being asked for a password');

# Nobody waits for that lookup any more: it is dropped, not retried forever
# (which would also keep waking a sleeping database).
my $off = -s $node->logfile;
$node->start;
usleep(1_500_000);
unlike(substr(slurp_file($node->logfile), $off), qr/application_name=pgwing-auth/,
	'a lookup nobody waits for is not retried once the database is back');
$pw2->stop;

done_testing();
