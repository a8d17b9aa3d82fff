# Never write to two primaries: two unrelated standalone servers both claim
# the role on the same timeline, so writers are held and then refused. Once
# one of them is gone, writes resume on the other.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;

my $one = new_node('one');
my $two = new_node('two');
$_->safe_psql('postgres', 'CREATE TABLE t (v int)') for ($one, $two);

my $pw = PgWing::Test->new(
	backends => [ [ one => $one ], [ two => $two ] ],
	settings => {
		health_interval => '200ms',
		health_timeout  => '1s',
		health_user     => os_user(),
		hold_timeout    => '1s',
	});
$pw->start;
ok($pw->wait_for_log(qr/several backends claim primary on timeline 1/),
	'the ambiguity is logged as an error');

my ($rc, $out, $err) = $pw->psql('INSERT INTO t VALUES (1)');
isnt($rc, 0, 'a writer gets no server while two primaries are up');
like($err, qr/no primary available/, 'with a clear error');
is($one->safe_psql('postgres', 'SELECT count(*) FROM t'), '0', 'nothing was written to server one');
is($two->safe_psql('postgres', 'SELECT count(*) FROM t'), '0', 'nothing was written to server two');

my $offset = $pw->log_position;
$two->stop('fast');
ok($pw->wait_for_log(qr/only one primary on timeline 1 again/, $offset),
	'resolved once server two is down');
is($pw->safe_psql('INSERT INTO t VALUES (2) RETURNING inet_server_port()'),
	$one->port, 'writes resume on the remaining primary');

$pw->stop;
done_testing();
