# auth_query: users missing from the auth file log in with the secret pgwing
# looks up in Postgres as auth_user (PgBouncer's auth_user + auth_query), so
# no password has to be copied to pgwing. Covers good and bad passwords, a
# user created after pgwing started, a changed password after auth_cache_ttl
# (or after one failed login),
# an unknown user answered exactly as a wrong password, a lookup held while
# the database is down (one lookup for many logins), and injection through the
# user name or a look-alike pg_shadow on auth_user's search_path
# (CVE-2025-12819 in PgBouncer).
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;
use IPC::Run;
use Time::HiRes qw(time usleep);

my $ttl_s = 2;

my $node = auth_query_node('primary', alice => 'alice-pw');
my $alice_secret = role_secret($node, 'alice');

# Only auth_user's own password is in the file.
my $pw = PgWing::Test->new(
	backends  => [ [ primary => $node ] ],
	auth_user => [ pgwing_auth => 'auth-pw' ],
	verbose   => 1,
	settings  => {
		auth_cache_ttl  => "${ttl_s}s",
		health_interval => '300ms',
		hold_timeout    => time_bound(30) . 's',
	});
$pw->start;

# Lookup connections pgwing holds open now.
sub lookup_connections
{
	return $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgwing-auth'");
}

sub login
{
	my ($user, $password, %o) = @_;
	return raw_login($pw->raw_connect, user => $user, password => $password, %o);
}

# Good and bad passwords.
my $off = -s $node->logfile;
is($pw->safe_psql('SELECT current_user', user => 'alice', password => 'alice-pw'),
	'alice', 'a user only in Postgres logs in with its password');
ok($node->log_contains(qr/identity="alice" method=scram-sha-256/, $off),
	'the server login used SCRAM with the client\'s keys');
my $r = login('alice', 'alice-pw');
ok($r->{ok} && $r->{server_verified}, 'pgwing proves it knows the looked-up secret')
  or diag explain $r;
my $wrong = login('alice', 'wrong');
is($wrong->{error}{C}, '28P01', 'a wrong password is 28P01');
is($wrong->{error}{M}, 'password authentication failed for user "alice"',
	'with Postgres\'s message');
my ($rc, $out, $err) =
  $pw->psql('SELECT 1', user => 'alice', password => 'wrong', extra_params => ['-w']);
like($err, qr/password authentication failed for user "alice"/, 'psql says so too');

# An unknown user: the same exchange, code and message as a wrong password.
my $unknown = login('nobody', 'whatever');
is($unknown->{error}{C}, '28P01', 'an unknown user is 28P01');
(my $msg = $unknown->{error}{M}) =~ s/"nobody"/"alice"/;
is($msg, $wrong->{error}{M}, 'with the message of a wrong password');
is_deeply($unknown->{auth}, $wrong->{auth}, 'after the same SASL exchange')
  or diag explain [ $unknown->{auth}, $wrong->{auth} ];
# Timing, for the record (the loaded CI machine makes a bound meaningless):
# both are answered after the same lookup and the same SCRAM rounds.
for my $case ([ 'alice', 'wrong' ], [ 'nobody', 'wrong' ])
{
	my @t;
	for (1 .. 5)
	{
		my $t0 = time();
		login(@$case);
		push @t, time() - $t0;
	}
	@t = sort { $a <=> $b } @t;
	note(sprintf('median time to 28P01, user %s: %.1f ms', $case->[0], 1000 * $t[2]));
}

# A user created after pgwing started.
create_role($node, 'bob', 'bob-pw');
is($pw->safe_psql('SELECT current_user', user => 'bob', password => 'bob-pw'),
	'bob', 'a user created after pgwing started logs in');

# For the record: what a lookup adds to a login (a cache miss: connect as
# auth_user, SCRAM, one query), against a cached answer.
create_role($node, 'erin', 'erin-pw');
for my $case ('lookup', 'cached')
{
	my $t0 = time();
	my $e  = login('erin', 'erin-pw');
	note(sprintf('login of erin, %s: %.1f ms', $case, 1000 * (time() - $t0)));
	ok($e->{ok}, "erin logs in ($case)");
}

# Nothing is kept connected once the lookups are answered: a database with
# no clients must be free to stop.
is(lookup_connections(), '0', 'no lookup connection left open');

# A changed password: the cached secret serves until auth_cache_ttl, then the
# new password works and the old one no longer does.
$node->safe_psql('postgres', "ALTER ROLE alice PASSWORD 'alice-new'");
usleep(($ttl_s + 0.5) * 1_000_000);
is($pw->safe_psql('SELECT current_user', user => 'alice', password => 'alice-new'),
	'alice', 'after auth_cache_ttl the new password works');
is(login('alice', 'alice-pw')->{error}{C}, '28P01', 'and the old one is refused');

# Injection through the user name: it is a parameter, never SQL.
for my $evil (q{x' OR '1'='1}, q{x' OR '1'='1' --}, q{alice' --}, q{pg_catalog.pg_shadow})
{
	my $e = login($evil, 'alice-new');
	is($e->{error}{C}, '28P01', "user name [$evil] finds nothing");
}

# A database down: the lookup holds the logins (one lookup for all of them)
# and they go on once it is back.
create_role($node, 'carol', 'carol-pw');
$node->stop;
my @h;
my @outs = map { '' } 1 .. 5;
for my $i (0 .. 4)
{
	push @h,
	  IPC::Run::start(
		[ 'psql', '-XAtq', '-w', '-d',
			$pw->connstr(user => 'carol', password => 'carol-pw'),
			'-c', 'SELECT current_user' ],
		'>', \$outs[$i], '2>&1',
		IPC::Run::timeout(time_bound(60)));
}
ok($pw->wait_for_log(qr/auth_query: lookup failed, retrying while logins wait/),
	'the lookup waits for the database');
# One more login of the same user leaves while it waits: its answer must not
# reach it (the sanitizers would see a use after free).
my $leaver = $pw->raw_connect;
print $leaver startup_packet(user => 'carol', database => 'postgres');
usleep(200_000);
close $leaver;
usleep(500_000);
$off = -s $node->logfile;
$node->start;
for my $i (0 .. 4)
{
	eval { $h[$i]->finish; 1 } or $h[$i]->kill_kill;
	chomp $outs[$i];
}
is_deeply(\@outs, [ ('carol') x 5 ], 'logins held while the database was down go on')
  or diag explain \@outs;
my $n_lookups = () = substr(slurp_file($node->logfile), $off) =~
  /connection authorized: user=pgwing_auth .*application_name=pgwing-auth/g;
is($n_lookups, 1, 'five logins of one user shared one lookup');

# The secret never reaches the log, even at debug level.
my ($salt_and_keys) = $alice_secret =~ /\$(.*)$/;
my $log = slurp_file($pw->logfile);
unlike($log, qr/\Q$salt_and_keys\E/, 'the looked-up secret is not logged');
unlike($log, qr/SCRAM-SHA-256\$/, 'no SCRAM secret in the log at all');
$pw->stop;

# A custom auth_query with an unqualified pg_shadow, and auth_user's own
# search_path pointing at a look-alike first: pgwing's lookup connection
# fixes search_path to pg_catalog, pg_temp, so the look-alike is never read;
# nor does a client's search_path reach it.
create_role($node, 'mallory_tmp', 'evil-pw');
my $evil_secret = role_secret($node, 'mallory_tmp');
$node->safe_psql(
	'postgres', qq{
	REVOKE ALL ON SCHEMA public FROM mallory_tmp;
	DROP ROLE mallory_tmp;
	CREATE SCHEMA evil;
	CREATE TABLE evil.pg_shadow (usename name, passwd text);
	INSERT INTO evil.pg_shadow VALUES ('mallory', '$evil_secret'), ('alice', '$evil_secret');
	ALTER ROLE pgwing_auth SET search_path = evil, pg_catalog;
});
my $pw2 = PgWing::Test->new(
	name      => 'shadow',
	backends  => [ [ primary => $node ] ],
	auth_user => [ pgwing_auth => 'auth-pw' ],
	settings  => {
		auth_query => 'SELECT usename, passwd FROM pg_shadow WHERE usename = $1',
	});
$pw2->start;
$r = raw_login($pw2->raw_connect, user => 'mallory', password => 'evil-pw');
is($r->{error}{C}, '28P01', 'a user only in a look-alike pg_shadow is unknown');
$r = raw_login(
	$pw2->raw_connect,
	user     => 'alice',
	password => 'evil-pw',
	params   => { options => '-c search_path=evil,pg_catalog' });
is($r->{error}{C}, '28P01',
	'the look-alike\'s password for a real user fails, whatever the client\'s search_path');
is($pw2->safe_psql('SELECT current_user', user => 'alice', password => 'alice-new'),
	'alice', 'the real pg_shadow answers');

# A password changed within auth_cache_ttl (60 s here): the cached secret
# refuses the new password once, and that failure makes the next login look
# it up again, so it works at once rather than after the TTL.
$node->safe_psql('postgres', "ALTER ROLE alice PASSWORD 'alice-3'");
$r = raw_login($pw2->raw_connect, user => 'alice', password => 'alice-3');
is($r->{error}{C}, '28P01', 'a new password right after the change is refused once (cached)');
$r = raw_login($pw2->raw_connect, user => 'alice', password => 'alice-3');
ok($r->{ok}, 'the next login with it looks the user up again and works') or diag explain $r;
$pw2->stop;

done_testing();
