# COPY FROM STDIN and COPY TO STDOUT of 100 MB through pgwing, byte for byte.
use strict;
use warnings;
use Digest::MD5;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;

my $node = new_node('primary');
$node->safe_psql('postgres', 'CREATE TABLE blob (id int, payload text)');
my $pw = PgWing::Test->new(backends => [ [ primary => $node ] ], auth_type => 'trust');
$pw->start;

# ~100 MB of text rows, deterministic but not trivially compressible.
my $mb   = $ENV{PGWING_COPY_MB} // 100;
my $src  = $pw->dir . '/copy_in.txt';
my $dst  = $pw->dir . '/copy_out.txt';
open my $fh, '>', $src or die $!;
my $size = 0;
my $i    = 0;
srand(42);
my @chunks = map { join '', map { chr(65 + int(rand(58))) =~ tr/\\[]^_`/abcdef/r } 1 .. 1000 } 1 .. 64;
while ($size < $mb * 1024 * 1024)
{
	my $line = $i . "\t" . $chunks[ $i % 64 ] . ($i * 7919) . "\n";
	print $fh $line;
	$size += length $line;
	$i++;
}
close $fh;
my $rows = $i;
note "generated $rows rows, $size bytes";

sub md5_file
{
	open my $f, '<', shift or die $!;
	binmode $f;
	return Digest::MD5->new->addfile($f)->hexdigest;
}

sub psql_file
{
	my ($sql, $in, $out) = @_;
	my $err = '';
	my @cmd = ('psql', '-XAtq', '-v', 'ON_ERROR_STOP=1', '-d', $pw->connstr, '-c', $sql);
	my $ok = eval {
		IPC::Run::run(\@cmd, '<', $in, '>', $out, '2>', \$err, IPC::Run::timeout(300));
		1;
	};
	return ($ok ? $? >> 8 : -1, $err . ($ok ? '' : $@));
}

my $t0 = time;
my ($rc, $err) = psql_file('COPY blob FROM STDIN', $src, \my $copy_out);
is($rc, 0, "COPY FROM STDIN of $mb MB through pgwing") or diag $err;
is($node->safe_psql('postgres', 'SELECT count(*) FROM blob'), $rows, 'all rows arrived');
is( $node->safe_psql('postgres',
		q{SELECT sum(length(payload) + length(id::text) + 2) FROM blob}),
	$size, 'byte count matches on the server');

($rc, $err) = psql_file('COPY (SELECT * FROM blob ORDER BY id) TO STDOUT', '/dev/null', $dst);
is($rc, 0, "COPY TO STDOUT of $mb MB through pgwing") or diag $err;
is(-s $dst, $size, 'COPY out size matches');
is(md5_file($dst), md5_file($src), 'COPY out md5 matches the source');
note sprintf('COPY in+out took %d s', time - $t0);

# A failing COPY FROM (bad data) is reported and the session stays usable.
my $bad = $pw->dir . '/bad.txt';
open $fh, '>', $bad or die $!;
print $fh "1\tok\nnot_a_number\tx\n";
close $fh;
($rc, $err) = psql_file('COPY blob FROM STDIN', $bad, \my $o2);
isnt($rc, 0, 'COPY with bad data fails');
like($err, qr/invalid input syntax for type integer/, 'the server\'s COPY error reaches the client');
is($pw->safe_psql('SELECT count(*) FROM blob'), $rows, 'failed COPY left no rows, pgwing still serving');

unlink $src, $dst;
$pw->stop;
done_testing();
