# The ro port is read-only whichever server serves it: with only a primary up
# (ro_fallback = primary), a write on the ro port fails with 25006 as it would
# on a replica, also after RESET ALL and DISCARD ALL, on a pooled server, and
# when the client asks for read-write in its startup options. The documented
# residual difference (doc/config.md, "The read-only port"): a client that
# itself turns read-only off in its session can write on the primary, where a
# replica would still refuse; the next client of that server is read-only again.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PgWing::Test qw(:all);
use Test::More;

my $primary = new_node('primary');
$primary->safe_psql('postgres', 'CREATE TABLE t (v int)');

my $pw = start_pgwing_with(
	backends => [ [ primary => $primary ] ],
	settings => { ro_fallback => 'primary' },
	up       => [ primary => 'primary' ]);

# Run $sql on the ro port, every statement even after an error; returns
# (stdout, the SQLSTATEs of the errors in order).
sub ro_run
{
	my ($sql, %o) = @_;
	my ($rc, $out, $err) = $pw->psql("\\set VERBOSITY verbose\n$sql",
		target       => 'ro',
		extra_params => [ '-v', 'ON_ERROR_STOP=0' ],
		%o);
	return ($out, [ $err =~ /ERROR:\s+([0-9A-Z]{5}):/g ]);
}

my ($out, $errors) = ro_run('SELECT pg_is_in_recovery(), inet_server_port()');
is($out, 'f|' . $primary->port, 'ro port: served by the primary (fallback)');
is_deeply($errors, [], 'SELECT works');

($out, $errors) = ro_run('INSERT INTO t VALUES (1)');
is_deeply($errors, ['25006'], 'INSERT on the ro port: 25006, as on a replica');

($out, $errors) = ro_run(
	"RESET ALL;\nINSERT INTO t VALUES (2);\nDISCARD ALL;\nINSERT INTO t VALUES (3);\n"
	  . "BEGIN;\nINSERT INTO t VALUES (4);\nROLLBACK;\nSELECT count(*) FROM t;");
is_deeply($errors, [ '25006', '25006', '25006' ],
	'after RESET ALL, after DISCARD ALL and in a transaction: still 25006');
is($out, '0', 'and SELECT still works');

# Startup options asking for read-write lose to pgwing's own parameter.
($out, $errors) = ro_run("SHOW default_transaction_read_only;\nINSERT INTO t VALUES (5);",
	options => '-c default_transaction_read_only=off');
is($out, 'on', 'startup options cannot turn read-only off');
is_deeply($errors, ['25006'], 'their INSERT fails with 25006');

# The residual difference: the session itself turns read-only off.
($out, $errors) = ro_run(
	"SET default_transaction_read_only = off;\nINSERT INTO t VALUES (6);\n"
	  . "BEGIN READ WRITE;\nINSERT INTO t VALUES (7);\nCOMMIT;");
is_deeply($errors, [],
	'documented difference: a session that turns read-only off can write on the primary');

# ... but that does not outlive the session: the pooled server is read-only again.
($out, $errors) = ro_run("SHOW default_transaction_read_only;\nINSERT INTO t VALUES (8);");
is($out, 'on', 'the next client of the pooled server is read-only again');
is_deeply($errors, ['25006'], 'and its INSERT fails with 25006');

is($pw->safe_psql('INSERT INTO t VALUES (9) RETURNING v'), '9', 'the rw port still writes');
is($pw->safe_psql('SHOW default_transaction_read_only'), 'off', 'and is not read-only');
is($primary->safe_psql('postgres', 'SELECT string_agg(v::text, \',\' ORDER BY v) FROM t'),
	'6,7,9', 'only the rows of the read-write session and of the rw port were written');

$pw->stop;
done_testing();
