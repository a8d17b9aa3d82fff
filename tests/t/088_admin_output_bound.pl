# A console client (a stats user) that pipelines SHOW CONFIG and never reads
# its answers: pgwing stops reading it once forward_buffer_size of answers
# wait, as on the data path, so its memory stays flat and other clients log in
# at once. When the client reads again, every answer arrives, in order.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Errno qw(EAGAIN EWOULDBLOCK);
use IO::Select;
use Test::More;
use Time::HiRes qw(time sleep);

# 20 000 SHOW CONFIGs are 340 kB to send and 48 MB of answers: pgwing at
# a1ed8dc made and buffered them all at once (its RSS grew by 545 MB, in
# small buffer chains) and held up other logins for 7 s meanwhile.
my $queries = 20_000;

my $node = new_node('primary');
my $pw = PgWing::Test->new(
	backends  => [ [ primary => $node ] ],
	auth_type => 'trust',
	settings  => { stats_users => 'watcher' });
$pw->start;


# Read until $n ReadyForQuery, writing what is left of $$out from $$sent
# meanwhile ($s non-blocking); returns the CommandComplete tags and the bytes read.
sub read_answers
{
	my ($s, $n, $timeout, $out, $sent) = @_;
	my ($buf, $bytes, $ready) = ('', 0, 0);
	my @tags;
	my $sel      = IO::Select->new($s);
	my $deadline = time + time_bound($timeout);
	while ($ready < $n && time < $deadline)
	{
		my $pending = defined $out && $$sent < length($$out);
		my ($r, $w) = IO::Select->select($sel, $pending ? $sel : undef, undef, 1);
		if ($w && @$w)
		{
			my $k = syswrite($s, $$out, length($$out) - $$sent, $$sent);
			die "write: $!" if !defined $k && $! != EAGAIN && $! != EWOULDBLOCK;
			$$sent += $k // 0;
		}
		next unless $r && @$r;
		my $got = sysread($s, $buf, 1 << 20, length $buf);
		next if !defined $got && ($! == EAGAIN || $! == EWOULDBLOCK);
		last if !$got;
		$bytes += $got;
		while (length($buf) >= 5)
		{
			my ($type, $len) = unpack('a N', $buf);
			last if length($buf) < 1 + $len;
			push @tags, unpack('Z*', substr($buf, 5, $len - 4)) if $type eq 'C';
			$ready++ if $type eq 'Z';
			die 'error: ' . explain(error_fields(substr($buf, 5, $len - 4)))
			  if $type eq 'E';
			substr($buf, 0, 1 + $len, '');
		}
	}
	return (\@tags, $bytes, $ready);
}

# Baseline: the console answered once, so its code and buffers are warm.
my $s = $pw->raw_connect;
ok(raw_login($s, user => 'watcher', database => 'pgwing')->{ok}, 'stats user on the console');
my $show = pg_message('Q', "SHOW CONFIG\0");
syswrite($s, $show);
my ($tags, $one) = read_answers($s, 1, 10);
like($tags->[0] // '', qr/^SELECT \d+$/, 'SHOW CONFIG answers');
note "one SHOW CONFIG answer: $one bytes";
my $rss0 = $pw->rss_kb;

# The attack: all the queries at once, none of the answers read.
$s->blocking(0);
my $out  = $show x $queries;
my $sent = 0;
my $t0   = time;
my $wsel = IO::Select->new($s);
while ($sent < length($out) && time - $t0 < time_bound(10))
{
	next unless $wsel->can_write(0.5);
	my $n = syswrite($s, $out, length($out) - $sent, $sent);
	die "write: $!" if !defined $n && $! != EAGAIN && $! != EWOULDBLOCK;
	$sent += $n // 0;
}
my $pipelined = int($sent / length($show));
note sprintf('pipelined %d of %d SHOW CONFIGs (%d bytes) in %.1f s',
	$pipelined, $queries, $sent, time - $t0);
cmp_ok($pipelined, '>', 0, 'the console read some of them');
sleep 2;
my $rss1 = $pw->rss_kb;
note "pgwing RSS: $rss0 kB before, $rss1 kB with the answers unread";
# forward_buffer_size (256kB) of answers and one read of queries: under
# 2 MB, against the 48 MB of answers the queries ask for. (Before the
# builders packed small messages, 256kB of answers took 11 MB in chains.)
cmp_rss($rss1 - $rss0, '<', 2 * 1024, 'pgwing memory stays bounded (< 2 MB growth)');

# Others are not held up: a login through pgwing and one to the console.
$t0 = time;
is($pw->safe_psql('SELECT 1', timeout => 20), '1', 'a client logs in and queries meanwhile');
my $took = time - $t0;
cmp_ok($took, '<', time_bound(2), sprintf('at once (%.2f s)', $took));
$t0 = time;
my ($rc, $lists) = $pw->psql('SHOW LISTS', dbname => 'pgwing', user => 'admin');
is($rc, 0, 'an admin uses the console meanwhile');
$took = time - $t0;
cmp_ok($took, '<', time_bound(2), sprintf('at once too (%.2f s)', $took));

# The client reads again: the rest of the queries go in, every answer comes out.
my $bytes;
($tags, $bytes) = read_answers($s, $queries, 120, \$out, \$sent);
is(scalar(@$tags), $queries, "all $queries answers arrive");
is(scalar(grep { $_ eq $tags->[0] } @$tags), $queries, 'each a complete SHOW CONFIG');
note "read $bytes bytes of answers";
my $rss2 = $pw->rss_kb;
note "pgwing RSS after the answers were read: $rss2 kB";
cmp_rss($rss2 - $rss0, '<', 2 * 1024, 'pgwing memory still bounded after');
syswrite($s, pg_message('X'));
close $s;

# A PAUSE that waits stops reading the same way: what the admin sent behind
# it is answered, in order, once it completes.
my $tx = $pw->background_psql;
$tx->query_safe('BEGIN');
$tx->query_safe('SELECT 1');
$s = $pw->raw_connect;
ok(raw_login($s, user => 'admin', database => 'pgwing')->{ok}, 'admin on the console');
syswrite($s, pg_message('Q', "PAUSE\0") . pg_message('Q', "SHOW VERSION\0"));
my ($type) = read_message($s, 1);
is($type, undef, 'PAUSE waits for the open transaction; nothing behind it is answered');
$tx->query_safe('COMMIT');
($tags) = read_answers($s, 2, 10);
is_deeply($tags, [ 'PAUSE', 'SELECT 1' ], 'then PAUSE completes, and SHOW VERSION answers');
syswrite($s, pg_message('Q', "RESUME\0"));
($tags) = read_answers($s, 1, 10);
is_deeply($tags, ['RESUME'], 'RESUME');
close $s;
$tx->quit;

ok($pw->alive, 'pgwing is alive');
$pw->stop;
done_testing();
