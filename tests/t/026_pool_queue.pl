# A full pool serves its clients in the order they asked. Here the pool's one
# server is held by an idle session, A; client B asks for a server, A is made
# to give it back, and A asks again at once: B, which asked first, gets it.
# Before, A's request, read in the same turn of the event loop as B's, took the
# pooled server back before the queue was served, and B waited behind it. With
# pgbench -M prepared under a lowered default_pool_size (005) that was the way
# into a stall of every client until hold_timeout.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use IO::Select;
use Test::More;

my $node = new_node('primary');
my $pw = PgWing::Test->new(
	backends  => [ [ primary => $node ] ],
	auth_type => 'trust',
	settings  => {
		default_pool_size => 1,
		# No reset query: a server given back is pooled at once, in the same
		# turn of the loop as the request that made it go.
		server_reset_query => '',
	});
$pw->start;

my $cl_a = $pw->raw_connect;
ok(raw_login($cl_a)->{ok}, 'A logs in: through the pool\'s one server, which it keeps');
my $cl_b = $pw->raw_connect;
ok(raw_login($cl_b)->{ok}, 'B logs in without a server (the pool knows the welcome)');

# Which query the one server ran first: each takes the next number.
$node->safe_psql('postgres', 'CREATE SEQUENCE turn');

# The answer to one Query on each socket: the row's value, or the error.
sub answers
{
	my (%socks) = @_;
	my (%buf, %got);
	my $sel = IO::Select->new(values %socks);
	my %name_of = map { ($socks{$_} => $_) } keys %socks;
	my $deadline = time() + time_bound(30);
	while ($sel->count > 0 && time() < $deadline)
	{
		for my $s ($sel->can_read(1))
		{
			my $name = $name_of{$s};
			$buf{$name} //= '';
			if (!sysread($s, $buf{$name}, 65536, length($buf{$name})))
			{
				$got{$name}{error} //= 'connection closed';
				$sel->remove($s);
				next;
			}
			while (my ($type, $body) = take_message(\$buf{$name}))
			{
				$got{$name}{value} = substr($body, 6, unpack('x2 N', $body))
				  if $type eq 'D';
				$got{$name}{error} = error_fields($body)->{M} if $type eq 'E';
				$sel->remove($s) if $type eq 'Z';
			}
		}
	}
	return \%got;
}

for my $round (1 .. 10)
{
	# B asks first, then A, whose server B's request makes it give back.
	syswrite($cl_b, pg_message('Q', "SELECT nextval('turn')\0"));
	syswrite($cl_a, pg_message('Q', "SELECT nextval('turn')\0"));
	my $got = answers(a => $cl_a, b => $cl_b);
	ok(defined $got->{a}{value} && defined $got->{b}{value},
		"round $round: both queries answered")
	  or diag explain $got;
	cmp_ok($got->{b}{value} // 0, '<', $got->{a}{value} // 0,
		"round $round: B, which asked first, was served first");
}

$pw->stop;
done_testing();
