# A 20 MB single value read back and inserted intact through pgwing.
use strict;
use warnings;
use Digest::MD5 qw(md5_hex);
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;

my $node = new_node('primary');
$node->safe_psql('postgres', 'CREATE TABLE big (id int, v text)');
my $pw = PgWing::Test->new(backends => [ [ primary => $node ] ], auth_type => 'trust');
$pw->start;

# 655360 md5 hex strings = 20 MB, the same on both sides.
my $n        = 20 * 1024 * 1024 / 32;
my $expected = join '', map { md5_hex($_) } 1 .. $n;
is(length $expected, 20 * 1024 * 1024, 'expected value is 20 MB');

# Read: one DataRow of 20 MB.
my $got = $pw->safe_psql("SELECT string_agg(md5(g::text), '' ORDER BY g) FROM generate_series(1, $n) g");
is(length $got, length $expected, '20 MB value read back: length');
ok($got eq $expected, '20 MB value read back: content identical');
undef $got;

# Write: one 20 MB Query message.
$pw->safe_psql("INSERT INTO big VALUES (1, '$expected')");
is( $node->safe_psql('postgres', 'SELECT length(v), md5(v) FROM big WHERE id = 1'),
	(length $expected) . '|' . md5_hex($expected),
	'20 MB value inserted intact');

# And through COPY, as one 20 MB CopyData row.
my $file = $pw->dir . '/row.txt';
open my $fh, '>', $file or die $!;
print $fh "2\t$expected\n";
close $fh;
my $err = '';
IPC::Run::run([ 'psql', '-XAtq', '-v', 'ON_ERROR_STOP=1', '-d', $pw->connstr, '-c', 'COPY big FROM STDIN' ],
	'<', $file, '>', \my $out, '2>', \$err, IPC::Run::timeout(120));
is($? >> 8, 0, 'COPY of a 20 MB row') or diag $err;
is($node->safe_psql('postgres', 'SELECT md5(v) FROM big WHERE id = 2'),
	md5_hex($expected), '20 MB row through COPY intact');
unlink $file;

is($pw->safe_psql('SELECT count(*) FROM big'), '2', 'still serving');
$pw->stop;
done_testing();
