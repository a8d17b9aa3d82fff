# While clients are held for a primary and none is known, backends are probed
# at health_interval_holding rather than health_interval (#20 item 3): when
# the primary dies before a replica is promoted, nothing hints at the
# promotion (the replica was already probed when the primary failed), and
# the held writes would otherwise wait for the replica's next scheduled probe.
#
# Here health_interval is long: the primary dies, a write is held, and the
# replica is promoted; the write runs there soon after, not a health_interval
# later.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;
use Time::HiRes qw(time);

my $interval = time_bound(20);
my ($old, $new) = primary_with_replicas('old', ['new'], sql => 'CREATE TABLE w (v int)');
my $pw = start_pgwing_with(
	backends => [ [ old => $old ], [ new => $new ] ],
	settings => {
		health_interval         => "${interval}s",
		health_interval_holding => '250ms',
		health_fail_count       => 1,
		hold_timeout            => ($interval * 3) . 's',
	},
	up => [ old => 'primary', new => 'replica' ]);

my $s = $pw->raw_connect;
ok(raw_login($s)->{ok}, 'logged in');

# The answer to the request in flight: (error fields or undef, first value).
sub answer
{
	my ($err, $value);
	while (1)
	{
		my ($t, $b) = read_message($s, $interval * 2);
		return ({ M => "no answer: $b" }, undef) unless defined $t;
		$err //= error_fields($b) if $t eq 'E';
		($value) = substr($b, 6, unpack('x2 N', $b)) if $t eq 'D' && !defined $value;
		return ($err, $value) if $t eq 'Z';
	}
}

sub send_query
{
	my ($sql) = @_;
	print $s pg_message('Q', "$sql\0");
}

send_query('SELECT inet_server_port()');
my (undef, $port) = answer();
is($port, $old->port, 'the session is on the primary');

$old->stop('immediate');
ok($pw->wait_for_backend('old', state => 'down'), 'the primary is marked down');
# Held: there is no primary. The replica was probed when the primary failed.
send_query('INSERT INTO w VALUES (1) RETURNING inet_server_port()');
sleep 1;
$new->promote;
my $promoted = time;
my $err;
($err, $port) = answer();
my $waited = time - $promoted;
is($err, undef, 'the held write got no error');
is($port, $new->port, 'it ran on the promoted node');
cmp_ok($waited, '<', $interval / 4,
	sprintf('%.2f s after the promotion, not at the next scheduled probe (every %d s)',
		$waited, $interval));
ok($pw->wait_for_backend('new', state => 'up', role => 'primary'),
	'SHOW BACKENDS: the promoted node is the primary');

close $s;
$pw->stop;
$new->stop;
done_testing();
