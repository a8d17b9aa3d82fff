# A read in flight over the extended protocol when its primary dies runs again
# on the promoted one, as a simple Query does (#20 item 5): Parse/Bind/
# Execute/Sync of the unnamed statement, and Bind/Execute/Sync of a named
# statement prepared earlier (which the new server gets first). A write in
# flight is not run again: its outcome is unknown.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;
use Time::HiRes qw(usleep);

# How long the in-flight statements sleep: the kill and the promotion fall
# inside, and the retry runs it whole on the new primary.
my $sleep = 2;

sub answers
{
	my ($s) = @_;
	my (@types, @rows, $error);
	while (1)
	{
		my ($t, $b) = read_message($s, 60);
		if (!defined $t)
		{
			push @types, "($b)";
			last;
		}
		push @types, $t;
		push @rows, substr($b, 6) if $t eq 'D';
		$error //= error_fields($b) if $t eq 'E';
		last if $t eq 'Z';
	}
	return { types => join('', @types), rows => \@rows, error => $error };
}

my ($old, $new) = primary_with_replicas('old', ['new'],
	sql => 'CREATE TABLE t (v int)');
my $pw = start_pgwing_with(
	backends => [ [ old => $old ], [ new => $new ] ],
	settings => { health_timeout => '1s', health_fail_count => 2, hold_timeout => '30s' },
	up       => [ old => 'primary', new => 'replica' ]);

my %s;
for my $name ('unnamed', 'named', 'write')
{
	$s{$name} = $pw->raw_connect;
	ok(raw_login($s{$name})->{ok}, "$name: logged in");
}

# The named statement is prepared (and answered) before the failure.
print { $s{named} } pg_message('P', "sleepy\0SELECT pg_sleep(\$1)::text || 'named'\0" . pack('n', 0))
  . pg_message('S');
is(answers($s{named})->{types}, '1Z', 'named: prepared');

my $bind_exec = sub {
	my ($stmt, @params) = @_;
	return pg_message('B',
		"\0$stmt\0" . pack('n', 0) . pack('n', scalar @params)
		  . join('', map { pack('N', length $_) . $_ } @params)
		  . pack('n', 0))
	  . pg_message('E', "\0" . pack('N', 0))
	  . pg_message('S');
};
print { $s{unnamed} } pg_message('P', "\0SELECT pg_sleep($sleep)::text || 'unnamed'\0" . pack('n', 0))
  . $bind_exec->('');
print { $s{named} } $bind_exec->('sleepy', $sleep);
print { $s{write} } pg_message('P', "\0INSERT INTO t SELECT 1 FROM pg_sleep($sleep)\0" . pack('n', 0))
  . $bind_exec->('');

usleep(500_000);
$old->stop('immediate');
$new->promote;

my $unnamed = answers($s{unnamed});
is($unnamed->{types}, '12DCZ', 'unnamed: Parse/Bind/Execute answered whole, no error');
is($unnamed->{rows}[0], 'unnamed', 'unnamed: its row, from the new primary');
my $named = answers($s{named});
is($named->{types}, '2DCZ', 'named: Bind/Execute answered whole, no error');
is($named->{rows}[0], 'named', 'named: its row, from the new primary');
my $write = answers($s{write});
is($write->{error}{C}, '08006', 'write: not run again, its outcome is unknown (08006)');

# Each session goes on.
for my $name (sort keys %s)
{
	print { $s{$name} } pg_message('Q', "SELECT pg_is_in_recovery()\0");
	my $a = answers($s{$name});
	is($a->{rows}[0], 'f', "$name: the session goes on, on the new primary");
	close $s{$name};
}

$pw->stop;
$new->stop;
done_testing();
