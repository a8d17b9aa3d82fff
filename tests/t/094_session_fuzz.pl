# The session fuzzer: random sessions through pgwing -- SETs, PREPAREs,
# queries, transactions (committed and rolled back), the extended protocol,
# a Query or an extended request with Terminate pipelined in the same write,
# and pauses long enough for server_idle_timeout to release the server --
# with default_pool_size below the number of sessions, so sessions move
# between servers at nearly every idle point. Every answer is checked against
# a model of what a direct session would answer. Run under ASan by make
# check-sanitizers, it is what catches a use after free in a callback chain.
#
# Bounded: PGWING_FUZZ_SECONDS (default 20) of steps; the seed is printed and
# PGWING_FUZZ_SEED replays a run.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;
use Time::HiRes qw(time sleep);

my $seconds = $ENV{PGWING_FUZZ_SECONDS} // 20;
my $seed = $ENV{PGWING_FUZZ_SEED} // int(rand(1 << 31));
srand($seed);
note "session fuzzer: seed $seed (PGWING_FUZZ_SEED=$seed replays it), $seconds s";

my $node = new_node('primary');
$node->safe_psql('postgres', 'CREATE SCHEMA s1; CREATE SCHEMA s2');
$node->safe_psql('postgres',
	'CREATE TABLE s1.t AS SELECT 1 AS v; CREATE TABLE s2.t AS SELECT 2 AS v');
my $pw = PgWing::Test->new(
	backends  => [ [ primary => $node ] ],
	auth_type => 'trust',
	settings  => { default_pool_size => 2, server_idle_timeout => '1s' });
$pw->start;

my $nsessions = 6;
my %stats;
my @failures;

sub fail_step
{
	my ($sess, $what) = @_;
	push @failures, "session $sess->{n} step $stats{steps}: $what";
	return;
}

# Read the answers to one request, up to ReadyForQuery (or the end).
sub read_answers
{
	my ($sock) = @_;
	my @rows;
	my @errors;
	my @tags;
	while (1)
	{
		my ($t, $b) = read_message($sock, 30);
		return { end => $b, rows => \@rows, errors => \@errors, tags => \@tags }
		  unless defined $t;
		if ($t eq 'D')
		{
			my $n = unpack('n', $b);
			my $off = 2;
			my @vals;
			for (1 .. $n)
			{
				my $len = unpack('l>', substr($b, $off, 4));
				$off += 4;
				push @vals, $len < 0 ? undef : substr($b, $off, $len);
				$off += $len if $len > 0;
			}
			push @rows, \@vals;
		}
		elsif ($t eq 'E')
		{
			push @errors, error_fields($b);
		}
		elsif ($t eq 'C')
		{
			push @tags, unpack('Z*', $b);
		}
		elsif ($t eq 'Z')
		{
			return { status => $b, rows => \@rows, errors => \@errors, tags => \@tags };
		}
	}
}

sub new_session
{
	my ($n) = @_;
	my $sock = $pw->raw_connect;
	my $login = raw_login($sock, params => { application_name => "fuzz$n" });
	die "session $n: login failed" unless $login->{ok};
	return {
		n        => $n,
		sock     => $sock,
		settings => {
			application_name => "fuzz$n",
			work_mem         => '4MB',
			search_path      => '"$user", public'
		},
		prepared => {},
		next_ps  => 1,
	};
}

sub query
{
	my ($sess, $sql) = @_;
	print { $sess->{sock} } pg_message('Q', "$sql\0");
	return read_answers($sess->{sock});
}

sub expect_ok
{
	my ($sess, $sql, $res) = @_;
	if (!defined $res->{status})
	{
		fail_step($sess, "$sql: connection ended ($res->{end})");
		return 0;
	}
	if (@{ $res->{errors} })
	{
		fail_step($sess, "$sql: error $res->{errors}[0]{C} $res->{errors}[0]{M}");
		return 0;
	}
	return 1;
}

my @work_mems = ('1MB', '2MB', '3MB', '8MB', '16MB');
my @paths     = ('s1', 's2', 's1, public', 's2, public');

# Each action takes a session, runs one request and checks its answer.
my %actions = (
	set => sub {
		my ($sess) = @_;
		my $name = (qw(application_name work_mem search_path))[ int(rand(3)) ];
		my $value =
			$name eq 'work_mem' ? $work_mems[ int(rand(@work_mems)) ]
		  : $name eq 'search_path' ? $paths[ int(rand(@paths)) ]
		  :                          "fuzz$sess->{n}_" . int(rand(1000));
		# search_path is a list: quoted, it would name one schema.
		my $literal = $name eq 'search_path' ? $value : "'$value'";
		my $res = query($sess, "SET $name = $literal");
		$sess->{settings}{$name} = $value if expect_ok($sess, "SET $name", $res);
	},
	show => sub {
		my ($sess) = @_;
		for my $name (sort keys %{ $sess->{settings} })
		{
			my $res = query($sess, "SHOW $name");
			next unless expect_ok($sess, "SHOW $name", $res);
			my $got = $res->{rows}[0][0] // '(none)';
			fail_step($sess, "SHOW $name: '$got', expected '$sess->{settings}{$name}'")
			  unless $got eq $sess->{settings}{$name};
		}
	},
	read_path => sub {
		my ($sess) = @_;
		my $path = $sess->{settings}{search_path};
		return unless $path =~ /^(s[12])/;
		my $want = $1 eq 's1' ? 1 : 2;
		my $res = query($sess, 'SELECT v FROM t');
		return unless expect_ok($sess, 'SELECT v FROM t', $res);
		my $got = $res->{rows}[0][0] // '(none)';
		fail_step($sess, "SELECT v FROM t with search_path $path: $got, expected $want")
		  unless $got eq $want;
	},
	prepare => sub {
		my ($sess) = @_;
		my $k = $sess->{next_ps}++;
		my $res = query($sess, "PREPARE p$k(int) AS SELECT \$1 + $k");
		$sess->{prepared}{"p$k"} = $k if expect_ok($sess, "PREPARE p$k", $res);
	},
	execute => sub {
		my ($sess) = @_;
		my @names = sort keys %{ $sess->{prepared} };
		return unless @names;
		my $name = $names[ int(rand(@names)) ];
		my $res = query($sess, "EXECUTE $name(100)");
		return unless expect_ok($sess, "EXECUTE $name", $res);
		my $got = $res->{rows}[0][0] // '(none)';
		my $want = 100 + $sess->{prepared}{$name};
		fail_step($sess, "EXECUTE $name(100): $got, expected $want") unless $got eq $want;
	},
	deallocate => sub {
		my ($sess) = @_;
		my @names = sort keys %{ $sess->{prepared} };
		return unless @names;
		my $name = $names[ int(rand(@names)) ];
		my $res = query($sess, "DEALLOCATE $name");
		delete $sess->{prepared}{$name} if expect_ok($sess, "DEALLOCATE $name", $res);
	},
	commit => sub {
		my ($sess) = @_;
		my $value = $work_mems[ int(rand(@work_mems)) ];
		my $res = query($sess, "BEGIN; SET work_mem = '$value'; SELECT 1; COMMIT");
		$sess->{settings}{work_mem} = $value if expect_ok($sess, 'BEGIN ... COMMIT', $res);
	},
	rollback => sub {
		my ($sess) = @_;
		my $res = query($sess, "BEGIN; SET work_mem = '64kB'; SELECT 1; ROLLBACK");
		expect_ok($sess, 'BEGIN ... ROLLBACK', $res);
	},
	extended => sub {
		my ($sess) = @_;
		my $n = int(rand(1000));
		print { $sess->{sock} } pg_message('P', "\0SELECT \$1::int * 2\0" . pack('n', 0))
		  . pg_message('B', "\0\0" . pack('n', 0) . pack('n', 1) . pack('N', length $n) . $n
			  . pack('n', 0))
		  . pg_message('E', "\0" . pack('N', 0))
		  . pg_message('S');
		my $res = read_answers($sess->{sock});
		return unless expect_ok($sess, 'extended SELECT', $res);
		my $got = $res->{rows}[0][0] // '(none)';
		fail_step($sess, "extended SELECT $n * 2: $got") unless $got eq 2 * $n;
	},
	idle => sub {
		my ($sess) = @_;
		# Past server_idle_timeout and the sweep after it: the server is released.
		sleep(1.2 + rand(1.0));
	},
	terminate_query => sub {
		my ($sess) = @_;
		# One write: a Query and the goodbye. Postgres answers the query, then closes.
		print { $sess->{sock} } pg_message('Q', "SELECT 7\0") . pg_message('X');
		my $res = read_answers($sess->{sock});
		my $end = read_answers($sess->{sock});
		fail_step($sess, 'Query + Terminate: no answer before the close')
		  unless defined $res->{status} || @{ $res->{rows} };
		fail_step($sess, 'Query + Terminate: the connection stays open')
		  if defined $end->{status};
		close $sess->{sock};
		$_[0] = new_session($sess->{n});
		$stats{reconnects}++;
	},
	terminate_extended => sub {
		my ($sess) = @_;
		print { $sess->{sock} } pg_message('P', "\0SELECT 1\0" . pack('n', 0))
		  . pg_message('B', "\0\0" . pack('n', 0) . pack('n', 0) . pack('n', 0))
		  . pg_message('E', "\0" . pack('N', 0))
		  . pg_message('S')
		  . pg_message('X');
		read_answers($sess->{sock});
		read_answers($sess->{sock});
		close $sess->{sock};
		$_[0] = new_session($sess->{n});
		$stats{reconnects}++;
	},
	terminate_only => sub {
		my ($sess) = @_;
		print { $sess->{sock} } pg_message('X');
		close $sess->{sock};
		$_[0] = new_session($sess->{n});
		$stats{reconnects}++;
	},
);
# Weights: the terminating and idle actions are the ones that exercise
# lifetimes; the others build up the state a move must carry.
my @deck = (
	('set') x 4, ('show') x 3, ('read_path') x 2, ('prepare') x 2, ('execute') x 3,
	'deallocate', 'commit', 'rollback', ('extended') x 2, ('idle') x 2,
	('terminate_query') x 2, 'terminate_extended', 'terminate_only');

my @sessions = map { new_session($_) } 1 .. $nsessions;
my $deadline = time + $seconds;
$stats{steps} = 0;
while (time < $deadline && @failures < 10)
{
	my $i = int(rand($nsessions));
	my $action = $deck[ int(rand(@deck)) ];
	$stats{steps}++;
	$stats{$action}++;
	if (!eval { $actions{$action}->($sessions[$i]); 1 })
	{
		push @failures, "step $stats{steps} ($action): $@";
		last;
	}
	last unless $pw->alive;
}
note join(', ', map { "$_ $stats{$_}" } sort keys %stats);

ok($pw->alive, "pgwing alive after $stats{steps} steps (seed $seed)");
is(scalar(@failures), 0, "every answer as a direct session gives it (seed $seed)")
  or diag join("\n", @failures);
cmp_ok($stats{idle} // 0, '>', 0, 'the run included idle releases');

# Every session still answers, with its own state.
$actions{show}->($_) for @sessions;
is(scalar(@failures), 0, 'every session keeps its settings at the end')
  or diag join("\n", @failures);
close $_->{sock} for @sessions;

$pw->stop;
done_testing();
