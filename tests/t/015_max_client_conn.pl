# max_client_conn: the client beyond it gets 53300 at once; a slot freed is
# a slot usable again.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;

my $node = new_node('primary');
my $pw = PgWing::Test->new(backends => [ [ primary => $node ] ], auth_type => 'trust',
	settings => { max_client_conn => 5 });
$pw->start;

my @held;
for my $i (1 .. 5)
{
	my $s = $pw->raw_connect;
	my $r = raw_login($s);
	ok($r->{ok}, "client $i of 5 logs in") or diag explain $r;
	push @held, $s;
}
my $r = raw_login($pw->raw_connect);
is($r->{error}{C}, '53300', 'client 6 gets 53300') or diag explain $r;
my ($rc, $out, $err) = $pw->psql('SELECT 1', timeout => 20);
isnt($rc, 0, 'psql beyond the limit fails');
like($err, qr/max_client_conn|too many/i, 'psql says why: the connection limit');

print { $held[0] } pg_message('X');
close shift @held;
my $ok = 0;
for (1 .. 50)
{
	last if ($ok = ($pw->psql('SELECT 1', timeout => 20) == 0));
	select(undef, undef, undef, 0.1);
}
ok($ok, 'after one leaves, a new client gets in');
close $_ for @held;
$pw->stop;
done_testing();
