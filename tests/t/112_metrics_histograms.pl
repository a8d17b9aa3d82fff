# The metrics an operator graphs, after real traffic (pgbench):
#
# - query and transaction duration histograms per database and target whose
#   counts are the query and transaction totals (SHOW STATS), with a slow
#   query in the bucket its duration says;
# - hold counts and durations by reason (a PAUSE held a client about 1 s);
# - backend state as a labelled gauge, probe RTT per backend (gauge and
#   histogram);
# - contrib/grafana/pgwing.json is well-formed JSON and every metric its
#   queries use is one /metrics exports.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use File::Basename qw(dirname);
use File::Spec;
use IPC::Run;
use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep time);

my $node = new_node('primary');
my $metrics_port = PostgreSQL::Test::Cluster::get_free_port();
my $pw = start_pgwing_with(
	backends => [ [ pg1 => $node ] ],
	settings => { metrics_listen => "127.0.0.1:$metrics_port" },
	up       => [ pg1 => 'primary' ]);

sub scrape
{
	my ($status, $text) = $pw->http_get('/metrics');
	is($status, 200, 'GET /metrics');
	my ($type, $samples, $problems) = parse_metrics($text);
	is_deeply($problems, [], 'valid Prometheus text format');
	return ($type, $samples);
}

# A histogram's buckets (by le, in order) for one label set: cumulative, +Inf = count.
sub buckets
{
	my ($samples, $name, $labels) = @_;
	my @b;
	for my $k (keys %$samples)
	{
		next unless $k =~ /^\Q${name}\E_bucket\{\Q$labels\E,?le="([^"]+)"\}$/;
		push @b, [ $1 eq '+Inf' ? 9**9**9 : $1, $samples->{$k} ];
	}
	return sort { $a->[0] <=> $b->[0] } @b;
}

sub check_histogram
{
	my ($samples, $name, $labels) = @_;
	my $sel = $labels eq '' ? '' : "{$labels}";
	my @b = buckets($samples, $name, $labels);
	ok(@b > 10, "$name$sel: buckets");
	my $mono = 1;
	$mono &&= $b[$_][1] >= $b[ $_ - 1 ][1] for 1 .. $#b;
	ok($mono, "$name$sel: buckets are cumulative");
	is($b[-1][1], $samples->{"${name}_count$sel"}, "$name$sel: +Inf bucket = count");
	ok(defined $samples->{"${name}_sum$sel"}, "$name$sel: a sum");
	return { map { ($_->[0] => $_->[1]) } @b };
}

my $pool = 'database="postgres",target="rw"';
my @init = ('pgbench', '-i', '-q', '-s', '1', $pw->connstr);
my ($out, $err) = ('', '');
ok(IPC::Run::run(\@init, '>', \$out, '2>', \$err), 'pgbench -i through pgwing') or diag($err);
my ($type, $before) = scrape();
my $transactions = 2 * 100;
my @bench = ('pgbench', '-n', '-S', '-c', '2', '-j', '1', '-t', '100', $pw->connstr);
ok(IPC::Run::run(\@bench, '>', \$out, '2>', \$err), 'pgbench -S through pgwing') or diag($err);
like($out, qr/number of failed transactions: 0 /, 'pgbench: no failed transaction');
my $after;
($type, $after) = scrape();

for my $family (
	qw(pgwing_query_duration_seconds pgwing_transaction_duration_seconds pgwing_wait_seconds
	pgwing_hold_seconds pgwing_wake_duration_seconds pgwing_probe_rtt_seconds))
{
	is($type->{$family}, 'histogram', "$family is a histogram");
}
is($type->{pgwing_backend_state}, 'gauge', 'pgwing_backend_state is a gauge');

check_histogram($after, 'pgwing_query_duration_seconds',       $pool);
check_histogram($after, 'pgwing_transaction_duration_seconds', $pool);
check_histogram($after, 'pgwing_wait_seconds',                 $pool);
is($after->{"pgwing_query_duration_seconds_count{$pool}"},
	$after->{"pgwing_queries_total{$pool}"}, 'query histogram count = pgwing_queries_total');
is($after->{"pgwing_transaction_duration_seconds_count{$pool}"},
	$after->{"pgwing_transactions_total{$pool}"},
	'transaction histogram count = pgwing_transactions_total');
cmp_ok(
	$after->{"pgwing_transaction_duration_seconds_count{$pool}"}
	  - $before->{"pgwing_transaction_duration_seconds_count{$pool}"},
	'>=', $transactions, "the pgbench run added its $transactions transactions");
cmp_ok($after->{"pgwing_query_duration_seconds_sum{$pool}"},
	'>', $before->{"pgwing_query_duration_seconds_sum{$pool}"}, 'the query duration sum grew');

# The same counts as the console's.
my ($stats) = grep { /^postgres\|rw\|/ }
  split /\n/, $pw->safe_psql('SHOW STATS', dbname => 'pgwing', user => 'admin');
my @s = split /\|/, $stats;
is($after->{"pgwing_query_duration_seconds_count{$pool}"}, $s[3],
	'query histogram count = SHOW STATS total_query_count');

# One slow query lands in the (0.5, 1] bucket, in both histograms.
my $q0 = check_histogram($after, 'pgwing_query_duration_seconds',       $pool);
my $x0 = check_histogram($after, 'pgwing_transaction_duration_seconds', $pool);
is($pw->safe_psql('SELECT pg_sleep(0.7)'), '', 'a query of 0.7 s');
my $now;
($type, $now) = scrape();
my $q1 = check_histogram($now, 'pgwing_query_duration_seconds',       $pool);
my $x1 = check_histogram($now, 'pgwing_transaction_duration_seconds', $pool);
is($q1->{0.5} - $q0->{0.5}, 0, 'query histogram: not under 0.5 s');
is($q1->{1} - $q0->{1},     1, 'query histogram: one more under 1 s');
is($x1->{1} - $x0->{1},     1, 'transaction histogram: one more under 1 s');

# A hold: PAUSE holds a client for about a second.
my $held0 = $now->{'pgwing_hold_seconds_count{reason="paused"}'};
$pw->safe_psql('PAUSE postgres', dbname => 'pgwing', user => 'admin');
my ($pout, $perr) = ('', '');
my $client = IPC::Run::start([ 'psql', '-XAtq', '-d', $pw->connstr, '-c', "SELECT 'held'" ],
	'<', \undef, '>', \$pout, '2>', \$perr);
my $deadline = time + time_bound(10);
my $waiting = 0;
while (time < $deadline)
{
	my ($row) = grep { /^postgres\|[^|]*\|rw\|/ }
	  split /\n/, $pw->safe_psql('SHOW POOLS', dbname => 'pgwing', user => 'admin');
	$waiting = (split /\|/, $row // '')[4] // 0;
	last if $waiting >= 1;
	sleep 0.05;
}
is($waiting, 1, 'a client waits in the paused pool');
sleep 1;
$pw->safe_psql('RESUME postgres', dbname => 'pgwing', user => 'admin');
$client->finish;
chomp $pout;
is($pout, 'held', 'the held client is served after RESUME');
($type, $now) = scrape();
check_histogram($now, 'pgwing_hold_seconds', 'reason="paused"');
is($now->{'pgwing_hold_seconds_count{reason="paused"}'} - $held0, 1, 'one hold ended: paused');
cmp_ok($now->{'pgwing_hold_seconds_sum{reason="paused"}'}, '>=', 0.9, 'it lasted about 1 s');
cmp_ok($now->{'pgwing_holds_total{reason="paused"}'}, '>=', 1, 'pgwing_holds_total counts it');
for my $reason (qw(failover wake full))
{
	ok(defined $now->{"pgwing_hold_seconds_count{reason=\"$reason\"}"},
		"pgwing_hold_seconds for $reason");
}
check_histogram($now, 'pgwing_wake_duration_seconds', '');

# Backends.
is($now->{'pgwing_backend_state{backend="pg1",state="up"}'}, 1, 'backend state: pg1 up');
is($now->{'pgwing_backend_state{backend="pg1",state="down"}'}, 0, 'backend state: not down');
is(scalar(grep { /^pgwing_backend_state\{backend="pg1",/ } keys %$now),
	5, 'backend state: one sample per state');
like($now->{'pgwing_backend_rtt_seconds{backend="pg1"}'}, qr/^\d+\.\d+$/, 'probe RTT of pg1');
check_histogram($now, 'pgwing_probe_rtt_seconds', 'backend="pg1"');
cmp_ok($now->{'pgwing_probe_rtt_seconds_count{backend="pg1"}'},
	'>=', 5, 'every probe of pg1 in the RTT histogram (one each 200 ms)');
cmp_ok($now->{'pgwing_probe_rtt_seconds_sum{backend="pg1"}'}, '>', 0, '... with their sum');

# The Grafana dashboard uses only metrics that exist.
my $file = File::Spec->catfile(dirname(File::Spec->rel2abs(__FILE__)),
	'..', '..', 'contrib', 'grafana', 'pgwing.json');
my $dash = eval {
	open my $fh, '<', $file or die "$file: $!";
	local $/;
	decode_json(<$fh>);
};
ok($dash, 'contrib/grafana/pgwing.json is well-formed JSON') or diag($@);
my @exprs;
my $walk;
$walk = sub {
	my ($v) = @_;
	if (ref $v eq 'HASH')
	{
		push @exprs, $v->{expr} if defined $v->{expr} && !ref $v->{expr};
		$walk->($_) for values %$v;
	}
	elsif (ref $v eq 'ARRAY')
	{
		$walk->($_) for @$v;
	}
};
$walk->($dash);
cmp_ok(scalar @exprs, '>=', 10, 'the dashboard has queries');
my %used = map { $_ => 1 } map { /\b(pgwing_\w+)/g } @exprs;
my @missing;
for my $name (sort keys %used)
{
	my $family = $name;
	$family =~ s/_(bucket|sum|count)$// if !$type->{$name} && $type->{ $name =~ s/_(bucket|sum|count)$//r };
	push @missing, $name unless $type->{$family};
}
is_deeply(\@missing, [], 'every metric the dashboard uses is exported');
for my $family (
	qw(pgwing_query_duration_seconds pgwing_transaction_duration_seconds pgwing_wait_seconds
	pgwing_hold_seconds pgwing_holds_total pgwing_wake_duration_seconds pgwing_backend_state
	pgwing_backend_rtt_seconds pgwing_probe_rtt_seconds))
{
	ok((grep { /^\Q$family\E(_bucket|_sum|_count)?$/ } keys %used), "the dashboard graphs $family");
}

$pw->stop;
done_testing();
