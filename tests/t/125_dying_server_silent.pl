# A server that goes because its Postgres goes (an immediate or fast
# shutdown, a failover) says so to its client before it closes: a WARNING
# "terminating connection due to immediate shutdown command" (57P01), or a
# FATAL 57P01 "terminating connection due to administrator command". A session
# that pgwing moves to another server must hear none of it (#20 item 6): an
# idle session, a read in flight (run again elsewhere) and a write in flight
# (told its outcome is unknown, then going on) see only their own answers.
# Both shutdowns: a replica stopped at once under read-only sessions, then the
# primary stopped fast under read-write ones and a replica promoted.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;
use Time::HiRes qw(usleep);

# near: the replica read-only clients prefer (same region as pgwing), stopped first.
my ($old, $new, $near) =
  primary_with_replicas('old', [ 'new', 'near' ], sql => 'CREATE TABLE t (v int)');
my $pw = start_pgwing_with(
	backends => [
		[ old  => $old,  region => 'far' ],
		[ new  => $new,  region => 'far' ],
		[ near => $near, region => 'here' ] ],
	settings => {
		region            => 'here',
		health_timeout    => '1s',
		health_fail_count => 1,
		hold_timeout      => '30s',
	},
	up => [ old => 'primary', new => 'replica', near => 'replica' ]);

# Every message up to ReadyForQuery: their types ('N' for a notice), the
# first value and the error's fields.
sub answers
{
	my ($s) = @_;
	my (@types, $value, $error);
	while (1)
	{
		my ($t, $b) = read_message($s, time_bound(30));
		if (!defined $t)
		{
			push @types, "($b)";
			last;
		}
		push @types, $t;
		($value) = substr($b, 6, unpack('x2 N', $b)) if $t eq 'D' && !defined $value;
		$error //= error_fields($b) if $t eq 'E';
		last if $t eq 'Z';
	}
	return { types => join('', @types), value => $value, error => $error };
}

sub query
{
	my ($s, $sql) = @_;
	print $s pg_message('Q', "$sql\0");
}

# Sessions that have a server on $node: it answers their first query.
sub sessions_on
{
	my ($node, $target, @names) = @_;
	my %s;
	for my $name (@names)
	{
		$s{$name} = $pw->raw_connect(target => $target);
		ok(raw_login($s{$name})->{ok}, "$name: logged in");
		query($s{$name}, 'SELECT inet_server_port()');
		is(answers($s{$name})->{value}, $node->port, "$name: served by " . $node->name);
	}
	return \%s;
}

# After the move, each session goes on, on $node, still hearing nothing of the old server.
sub go_on
{
	my ($s, $node) = @_;
	for my $name (sort keys %$s)
	{
		query($s->{$name}, 'SELECT inet_server_port()');
		my $a = answers($s->{$name});
		is($a->{types}, 'TDCZ', "$name: its next query is answered, with no notice");
		is($a->{value}, $node->port, "$name: by " . $node->name);
	}
}

my $sleepy = 'SELECT inet_server_port() FROM pg_sleep(1)';

# An immediate shutdown of the replica: its servers warn, then close.
my $ro = sessions_on($near, 'ro', 'ro idle', 'ro reading');
query($ro->{'ro reading'}, $sleepy);
usleep(300_000);
$near->stop('immediate');
my $a = answers($ro->{'ro reading'});
is($a->{types}, 'TDCZ', 'ro reading: its read runs again elsewhere, with no notice');
is($a->{value}, $new->port, 'ro reading: answered by the other replica');
go_on($ro, $new);

# A fast shutdown of the primary, then a promotion.
my $rw = sessions_on($old, 'rw', 'rw idle', 'rw reading', 'rw writing');
query($rw->{'rw reading'}, $sleepy);
query($rw->{'rw writing'}, 'INSERT INTO t SELECT 1 FROM pg_sleep(1)');
usleep(300_000);
$old->stop('fast');
$new->promote;
$a = answers($rw->{'rw reading'});
is($a->{types}, 'TDCZ', 'rw reading: its read runs again on the new primary, with no notice');
is($a->{value}, $new->port, 'rw reading: answered by the new primary');
$a = answers($rw->{'rw writing'});
is($a->{types}, 'EZ', 'rw writing: only the error that its outcome is unknown');
is($a->{error}{C}, '08006', 'rw writing: 08006');
go_on($rw, $new);

close $_ for (values %$ro, values %$rw);
$pw->stop;
$new->stop;
done_testing();
