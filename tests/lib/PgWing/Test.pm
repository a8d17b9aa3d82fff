
=pod

=head1 NAME

PgWing::Test - run pgwing in front of PostgreSQL::Test::Cluster nodes in TAP tests

=head1 SYNOPSIS

  use strict;
  use warnings;
  use PostgreSQL::Test::Utils;
  use PgWing::Test qw(new_node create_role);
  use Test::More;

  my $node = new_node('primary');            # initdb + start, on 127.0.0.1:<free port>
  create_role($node, 'alice', 'secret');       # SCRAM secret in pg_authid
  my $pw = PgWing::Test->new(
      backends  => [ [ primary => $node ] ],
      auth_type => 'scram-sha-256',
      users     => { alice => 'secret' },
      settings  => { max_client_conn => 100 });
  $pw->start;
  my ($rc, $out, $err) = $pw->psql('select 1', user => 'alice', password => 'secret');
  is($out, '1', 'round trip');
  $pw->stop;                                   # asserts pgwing did not crash
  done_testing();

Tests run through F<tests/run-tap> (C<make check>), which sets C<PGWING_BIN>,
C<PG_REGRESS>, C<TESTDIR> and the Perl include path.

=head1 DESCRIPTION

Loading this module switches PostgreSQL::Test::Cluster to TCP on 127.0.0.1
(instead of a unix socket), so pgwing can reach the nodes as
C<host=127.0.0.1 port=N>. The node's own C<psql>/C<safe_psql> keep working;
its pg_hba.conf from initdb trusts every local connection.

Each pgwing instance gets its own directory under C<tmp_check/>
(C<t_TESTNAME_pgwing_NAME>) holding F<pgwing.ini> and F<userlist.txt>, and
logs (stdout+stderr) to C<tmp_check/log/TESTNAME_pgwing_NAME.log>, next to the
Postgres logs; F<tests/run-tap> prints its tail when a test fails.

=head1 CHECKING TOOLS

Every pgwing (C<start>, C<run_pgwing>) runs with C<ASAN_OPTIONS> and
C<UBSAN_OPTIONS> that put AddressSanitizer/LeakSanitizer reports in
C<tmp_check/log/TESTNAME_pgwing_NAME.asan.PID>; F<tests/run-tap> fails the run
on any report, whether the test passed or not. C<PGWING_WRAPPER> (a command
prefix, C<%L> standing for that log base) runs pgwing under a tool such as
valgrind, and C<PGWING_TIMEOUT_FACTOR> multiplies the waits of this module
(start, stop, C<wait_for_log>, C<read_message>) for the slower pgwing.

=cut

package PgWing::Test;

use strict;
use warnings;

use Carp;
use Digest::MD5 qw(md5_hex);
use Digest::SHA ();
use MIME::Base64 ();
use Errno qw(EAGAIN EINTR EWOULDBLOCK);
use File::Basename qw(basename);
use File::Path qw(make_path);
use IO::Select;
use IO::Socket::INET;
use IPC::Run;
use POSIX qw(WNOHANG);
use Time::HiRes qw(usleep time);
use PostgreSQL::Test::Utils ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::BackgroundPsql;
use Test::More;

use Exporter 'import';
our @EXPORT_OK = qw(
  new_node create_role role_secret set_hba os_user node_processes node_connections
  startup_packet read_startup pg_message read_message take_message error_fields raw_login
  raw_exchange data_rows query_message extended_messages
  pgwing_bin run_pgwing tool_bin is_sanitized cmp_rss time_bound cpu_share_bound parse_metrics
  primary_with_replicas start_pgwing_with auth_query_node wait_until
);
our %EXPORT_TAGS = (all => \@EXPORT_OK);

my @all_instances;

# Checking tools around every pgwing a test runs; tests/run-tap collects what
# they report after the run. PGWING_WRAPPER is a command prefix (valgrind, for
# `make check-valgrind`) in which %L stands for the pgwing's log base,
# tmp_check/log/TEST_pgwing_NAME. PGWING_TIMEOUT_FACTOR stretches every wait
# for pgwing below, for a pgwing such a wrapper slows down; a wait only decides
# when to give up, so stretching it never hides a wrong answer.
my $timeout_factor = $ENV{PGWING_TIMEOUT_FACTOR} || 1;

sub _timeout { return $_[0] * $timeout_factor; }

# An upper bound a test puts on how long pgwing takes, stretched as the waits
# are: under valgrind "at once" takes several times longer.
sub time_bound { return _timeout($_[0]); }

# wait_until($check, $seconds): call $check every 20 ms until it returns true,
# for at most $seconds (default 30) stretched by the timeout factor. 1 when it
# did, 0 when time ran out; $check runs once more at the deadline, so a slow
# machine gets its last look.
sub wait_until
{
	my ($check, $seconds) = @_;
	my $deadline = time() + _timeout($seconds // 30);
	while (time() < $deadline)
	{
		return 1 if $check->();
		usleep(20_000);
	}
	return $check->() ? 1 : 0;
}

# An upper bound on the share of a core pgwing may burn while it should be
# idle (a busy-loop check), stretched as time_bound is but never to a whole
# core: a busy loop takes one under valgrind too.
sub cpu_share_bound
{
	my $share = _timeout($_[0]);
	return $share < 0.5 ? $share : 0.5;
}

sub _tool_command
{
	my ($logbase, @cmd) = @_;
	my @wrapper = split ' ', ($ENV{PGWING_WRAPPER} // '');
	s/%L/$logbase/g for @wrapper;
	return (@wrapper, @cmd);
}

# Sanitizer settings; a build without sanitizers ignores them. ASan and LSan
# reports go to files next to the log, so a daemon whose stderr is /dev/null
# still leaves them. GCC's UBSan built not to recover (configure's
# -fno-sanitize-recover) ignores log_path and writes to stderr, the pgwing log,
# which run-tap searches too (a daemon's UBSan report is lost); it stops pgwing
# at the first report, so the test that triggered it fails as well. Beyond the
# defaults, ASan checks use after return (a libevent callback holding a pointer
# into a stack frame that is gone) and reads of unterminated strings.
sub _tool_env
{
	my ($logbase) = @_;
	my $opts = sub { join(':', grep { defined && $_ ne '' } @_) };
	return (
		ASAN_OPTIONS => $opts->('detect_leaks=1:detect_stack_use_after_return=1:strict_string_checks=1',
			$ENV{ASAN_OPTIONS}, "log_path=$logbase.asan"),
		UBSAN_OPTIONS => $opts->('print_stacktrace=1:halt_on_error=1', $ENV{UBSAN_OPTIONS},
			"log_path=$logbase.ubsan"));
}

# Cluster.pm decides TCP vs unix socket in its own INIT block, which runs
# before ours (it is compiled first). Override it so nodes listen on
# 127.0.0.1; new_node() does it again in case we were loaded late.
INIT
{
	_use_tcp();
	# A test killed by prove or a CI timeout still runs the END blocks, which
	# stop pgwing and the nodes instead of leaving them running.
	for my $sig (qw(TERM INT HUP))
	{
		$SIG{$sig} = sub { die "test killed by SIG$sig\n" }
		  unless ref $SIG{$sig};
	}
}

sub _use_tcp
{
	$PostgreSQL::Test::Cluster::use_tcp     = 1;
	$PostgreSQL::Test::Cluster::test_pghost = '127.0.0.1';
	$ENV{PGHOST} = '127.0.0.1';
	return;
}

sub _testname
{
	my $t = basename($0);
	$t =~ s/\.[^.]+$//;
	return $t;
}

=pod

=head1 FUNCTIONS

=over

=item pgwing_bin()

The pgwing binary under test: C<$ENV{PGWING_BIN}> (set by run-tap).

=cut

sub pgwing_bin
{
	my $bin = $ENV{PGWING_BIN};
	croak "PGWING_BIN is not set; run tests through tests/run-tap"
	  unless defined $bin && $bin ne '';
	croak "PGWING_BIN=$bin is not executable" unless -x $bin;
	return $bin;
}

=pod

=item is_sanitized()

Whether the pgwing under test is an AddressSanitizer build (C<make
check-sanitizers>): its RSS then holds ASan's quarantine (freed memory kept
back to catch use after free) and shadow memory, so a bound on RSS says
nothing about pgwing there.

=item cmp_rss($got, $op, $limit, $name)

C<cmp_ok> for a bound on pgwing's memory; on a sanitizer build it notes the
figures instead, since the plain build's run of the same test asserts them.

=cut

my $is_sanitized;

sub is_sanitized
{
	if (!defined $is_sanitized)
	{
		my $bin = pgwing_bin();
		$is_sanitized = `ldd '$bin' 2>/dev/null` =~ /libasan/ ? 1 : 0;
	}
	return $is_sanitized;
}

sub cmp_rss
{
	my ($got, $op, $limit, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	if (is_sanitized())
	{
		note "$name: not asserted on an ASan build ($got $op $limit?)";
		return 1;
	}
	return cmp_ok($got, $op, $limit, $name);
}

=pod

=item tool_bin($name)

A client program from F<tests/tools/> (built by C<make check>), via
C<$ENV{PGWING_TOOLDIR}> (set by run-tap). Dies saying how to build it.

=cut

sub tool_bin
{
	my ($name) = @_;
	my $dir = $ENV{PGWING_TOOLDIR} // '';
	croak "tests/tools/$name is not built (PGWING_TOOLDIR=$dir): run make check, "
	  . "or make tests/tools/$name"
	  unless $dir ne '' && -x "$dir/$name";
	return "$dir/$name";
}

=pod

=item run_pgwing(@args) => ($exit_code, $stdout, $stderr)

Run the pgwing binary to completion (e.g. C<--check FILE>, C<--version>),
with a 30 s timeout. Its stderr is also appended to
C<tmp_check/log/TESTNAME_pgwing_run.log>.

=cut

sub run_pgwing
{
	my @args    = @_;
	my $logbase = "$PostgreSQL::Test::Utils::log_path/" . _testname() . '_pgwing_run';
	my ($out, $err) = ('', '');
	my $ok = eval {
		local %ENV = (%ENV, _tool_env($logbase));
		IPC::Run::run([ _tool_command($logbase, pgwing_bin(), @args) ],
			'<', \undef, '>', \$out, '2>', \$err,
			IPC::Run::timeout(_timeout(30)));
		1;
	};
	my $rc = $ok ? $? >> 8 : -1;
	$err .= "pgwing @args timed out: $@" unless $ok;
	if (open my $log, '>>', "$logbase.log")
	{
		print $log "# pgwing @args: exit code $rc\n$err";
		close $log;
	}
	return ($rc, $out, $err);
}

=pod

=item os_user()

The name of the OS user running the tests, which is also the bootstrap
superuser of every node.

=cut

sub os_user
{
	return scalar(getpwuid($<));
}

=pod

=item new_node($name, %params) => PostgreSQL::Test::Cluster

Create, init and start a node listening on 127.0.0.1. C<%params> go to
C<init> (e.g. C<allows_streaming =E<gt> 1>), except:

=over

=item conf => "line\n..." appended to postgresql.conf

=item max_connections => N (default 100; Cluster sets 10 for streaming nodes)

=item start => 0 to skip starting

=item own_host => 1, port => N: listen on the next free 127.0.0.x (from
127.0.0.2) instead, on port N if given, so that several nodes can share a
port as machines on a private network do (PostgreSQL::Test::Cluster's own
options)

=back

=cut

sub new_node
{
	my ($name, %params) = @_;
	_use_tcp();
	my $conf  = delete $params{conf};
	my $maxc  = delete $params{max_connections} // 100;
	my $start = delete $params{start} // 1;
	my %where = map { exists $params{$_} ? ($_ => delete $params{$_}) : () } qw(own_host port);
	my $node  = PostgreSQL::Test::Cluster->new($name, %where);
	$node->init(%params);
	$node->append_conf('postgresql.conf', "max_connections = $maxc");
	$node->append_conf('postgresql.conf', $conf) if defined $conf;
	$node->start if $start;
	return $node;
}

=pod

=item primary_with_replicas($name, [ $replica_name, ... ], %opt) => ($primary, @replicas)

A streaming primary (C<new_node($name, allows_streaming =E<gt> 1)>) and
replicas made from a base backup of it, all started. Options:
C<max_connections =E<gt> N> for every node; C<sql =E<gt> "..."> run on the
primary, after which every replica has replayed it.

=cut

sub primary_with_replicas
{
	my ($name, $replica_names, %opt) = @_;
	my $maxc = $opt{max_connections};
	my $primary = new_node($name, allows_streaming => 1,
		(defined $maxc ? (max_connections => $maxc) : ()));
	$primary->backup('base');
	my @replicas;
	for my $rname (@$replica_names)
	{
		my $replica = PostgreSQL::Test::Cluster->new($rname);
		$replica->init_from_backup($primary, 'base', has_streaming => 1);
		$replica->append_conf('postgresql.conf', "max_connections = $maxc") if defined $maxc;
		$replica->start;
		push @replicas, $replica;
	}
	if (defined $opt{sql})
	{
		$primary->safe_psql('postgres', $opt{sql});
		$primary->wait_for_catchup($_, 'replay') for @replicas;
	}
	return ($primary, @replicas);
}

=pod

=item auth_query_node($name, $user => $password, ...) => PostgreSQL::Test::Cluster

A node for auth_query tests: C<new_node> with connections logged, the
superuser role C<pgwing_auth> (password C<auth-pw>: pgwing's C<auth_user>,
see C<auth_user> in C<new>) and the given roles, all behind SCRAM
(C<set_hba>).

=cut

sub auth_query_node
{
	my ($name, @roles) = @_;
	my $node = new_node($name, conf => 'log_connections = on');
	create_role($node, 'pgwing_auth', 'auth-pw', superuser => 1);
	for (my $i = 0; $i < @roles; $i += 2)
	{
		create_role($node, $roles[$i], $roles[ $i + 1 ]);
	}
	set_hba($node, 'scram-sha-256');
	return $node;
}

=pod

=item create_role($node, $user, $password, %opt)

C<CREATE ROLE $user LOGIN PASSWORD $password>. Options:
C<encryption =E<gt> 'scram-sha-256'|'md5'> (default scram-sha-256),
C<superuser =E<gt> 1>. A password of undef creates a role without one.

=cut

sub create_role
{
	my ($node, $user, $password, %opt) = @_;
	my $enc   = $opt{encryption} // 'scram-sha-256';
	my $super = $opt{superuser} ? ' SUPERUSER' : '';
	my $pw    = defined $password ? " PASSWORD " . _sql_literal($password) : '';
	$node->safe_psql('postgres',
		    "SET password_encryption = '$enc';\n"
		  . "CREATE ROLE \"$user\" LOGIN$super$pw;\n"
		  . "GRANT ALL ON SCHEMA public TO \"$user\";");
	return;
}

=pod

=item role_secret($node, $user) => string

The stored password verifier (C<SCRAM-SHA-256$...> or C<md5...>) of a role,
from pg_authid, to put in pgwing's auth file.

=cut

sub role_secret
{
	my ($node, $user) = @_;
	return $node->safe_psql('postgres',
		"SELECT rolpassword FROM pg_authid WHERE rolname = " . _sql_literal($user));
}

=pod

=item set_hba($node, $method)

Rewrite the node's pg_hba.conf so TCP connections from every role but the
test superuser use C<$method> (trust, password, md5, scram-sha-256), and
reload. The superuser (os_user) and replication stay trusted.

=cut

sub set_hba
{
	my ($node, $method) = @_;
	my $su = os_user();
	open my $fh, '>', $node->data_dir . '/pg_hba.conf' or die $!;
	print $fh "local all all trust\n";
	print $fh "host all \"$su\" 127.0.0.1/32 trust\n";
	print $fh "host replication all 127.0.0.1/32 trust\n";
	print $fh "host all all 127.0.0.1/32 $method\n";
	close $fh;
	$node->reload;
	return;
}

=pod

=item node_processes($node) => ($postmaster, @children)

The node's postmaster and its children: what C<kill 'STOP'> hangs as a whole
(a hung backend), and C<kill 'CONT'> continues.

=cut

sub node_processes
{
	my ($node) = @_;
	my $postmaster = $node->{_pid};
	return ($postmaster, split /\s+/, `pgrep -P $postmaster`);
}

=pod

=item node_connections($node) => $count

How many client connections $node has besides the ones this function makes:
pgwing's servers and probes (and any other client's). Each call tags its own
connection with an application_name that the count leaves out, so the backend
of an earlier call, which may still be exiting after its psql returned (80 ms
on a loaded machine), is not counted as one of pgwing's.

=cut

sub node_connections
{
	my ($node) = @_;
	return $node->safe_psql('postgres',
		"SET application_name = 'pgwing-test-count'; "
		  . "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
		  . "AND application_name IS DISTINCT FROM 'pgwing-test-count'");
}

sub _sql_literal
{
	my $s = shift;
	$s =~ s/'/''/g;
	return "'$s'";
}

sub _conn_quote
{
	my $s = shift;
	return $s if $s =~ /^[A-Za-z0-9_.\/:-]+$/;
	$s =~ s/(['\\])/\\$1/g;
	return "'$s'";
}

=pod

=back

=head1 METHODS

=over

=item PgWing::Test->new(%args)

=over

=item name => 'pw' (instance name; must be unique in a test file)

=item backends => [ [ primary => $node ], [ replica1 => $node2, region => 'fra' ], [ gone => 'host=127.0.0.1 port=1' ] ]

Each entry is a name and either a PostgreSQL::Test::Cluster (written as
C<host=127.0.0.1 port=N region=local>; extra key/value pairs are appended) or
a literal backend line.

=item auth_type => 'trust' | 'plain' | 'md5' | 'scram-sha-256' (default trust)

=item users => { alice => 'secret', bob => 'SCRAM-SHA-256$4096:...' }

Written to the auth file as C<"user" "password-or-secret"> lines.

=item auth_user => [ $user, $password ]

pgwing looks up the users missing from the auth file as C<$user> (the
C<auth_user> setting, unless C<settings> name another), whose password is
then the only one in the auth file (unless C<users> is given); C<auth_type>
defaults to scram-sha-256.

=item settings => { max_client_conn => 100, ... }

Any other [pgwing] setting; overrides the defaults written by the module
(listen_addr 127.0.0.1, free rw/ro ports, unix_socket_dir empty,
auth_file, admin_users admin, admin_trust_tcp on, health_user os_user() -- the nodes' superuser,
trusted by their pg_hba.conf, also after set_hba).

=item extra_config => "raw text appended to the ini file"

=item rw_port, ro_port => N (default: free ports)

=item verbose => 1 to start pgwing with -v

=item env => { PGWING_X => 'y' } environment for the pgwing process

=item console_password => 'pw': the password C<console> (and C<admin_rows>,
C<backends>, C<wait_for_backend>) gives as C<admin>, when the console asks for one

=back

=cut

sub new
{
	my ($class, %args) = @_;
	if (my $au = delete $args{auth_user})
	{
		$args{auth_type} //= 'scram-sha-256';
		$args{users}     //= { $au->[0] => $au->[1] };
		$args{settings} = { auth_user => $au->[0], %{ $args{settings} // {} } };
	}
	my $name     = $args{name} // 'pw';
	my $testname = _testname();
	my $self     = bless {
		name         => $name,
		backends     => $args{backends} // [],
		auth_type    => $args{auth_type} // 'trust',
		users        => $args{users} // {},
		settings     => $args{settings} // {},
		extra_config => $args{extra_config} // '',
		verbose      => $args{verbose} // 0,
		env          => $args{env} // {},
		console_password => $args{console_password},
		dir => "$PostgreSQL::Test::Utils::tmp_check/t_${testname}_pgwing_${name}",
		logfile =>
		  "$PostgreSQL::Test::Utils::log_path/${testname}_pgwing_${name}.log",
		pid => undef,
	}, $class;
	$self->{rw_port} = $args{rw_port}
	  // PostgreSQL::Test::Cluster::get_free_port();
	$self->{ro_port} = $args{ro_port}
	  // PostgreSQL::Test::Cluster::get_free_port();
	make_path($self->{dir});
	push @all_instances, $self;
	return $self;
}

=pod

=item Accessors

C<name>, C<rw_port>, C<ro_port>, C<port($target)> ('rw' or 'ro'),
C<host> (127.0.0.1), C<dir>, C<logfile>, C<config_file>, C<auth_file>,
C<pid> (undef when not running).

=cut

sub name        { return $_[0]{name}; }
sub rw_port     { return $_[0]{rw_port}; }
sub ro_port     { return $_[0]{ro_port}; }
sub host        { return '127.0.0.1'; }
sub dir         { return $_[0]{dir}; }
sub logfile     { return $_[0]{logfile}; }
sub config_file { return "$_[0]{dir}/pgwing.ini"; }
sub auth_file   { return "$_[0]{dir}/userlist.txt"; }
sub pid         { return $_[0]{pid}; }

sub port
{
	my ($self, $target) = @_;
	$target //= 'rw';
	return $self->{ro_port} if $target eq 'ro';
	return $self->{rw_port} if $target eq 'rw';
	croak "unknown target $target (want rw or ro)";
}

=pod

=item $pw->set(setting => value, ...), $pw->set_users(\%users), $pw->set_backends(\@backends)

Change what the next write_config/start/restart writes.

=cut

sub set
{
	my ($self, %kv) = @_;
	$self->{settings}{$_} = $kv{$_} for keys %kv;
	return;
}

sub set_users
{
	my ($self, $users) = @_;
	$self->{users} = $users;
	return;
}

sub set_backends
{
	my ($self, $backends) = @_;
	$self->{backends} = $backends;
	return;
}

sub _backend_line
{
	my ($entry) = @_;
	my ($name, $target, %extra) = @$entry;
	my $line;
	if (ref $target)
	{
		my %kv = (region => 'local', %extra);
		$line = 'host=' . $target->host . ' port=' . $target->port;
		$line .= " $_=$kv{$_}" for sort keys %kv;
	}
	else
	{
		$line = $target;
		$line .= " $_=$extra{$_}" for sort keys %extra;
	}
	return "$name = $line\n";
}

=pod

=item $pw->write_config

Write F<pgwing.ini> and F<userlist.txt> into the instance directory
(start does this).

=cut

sub write_config
{
	my ($self) = @_;
	my %s = (
		listen_addr     => '127.0.0.1',
		rw_port         => $self->{rw_port},
		ro_port         => $self->{ro_port},
		unix_socket_dir => '',
		auth_type       => $self->{auth_type},
		auth_file       => $self->auth_file,
		admin_users     => 'admin',
		# The tests reach the console as "admin" over loopback under trust;
		# 090_auth_hardening.pl tests the default (off).
		admin_trust_tcp => 'on',
		# Probes log in as health_user; the nodes' bootstrap superuser is the OS user.
		health_user     => os_user(),
		%{ $self->{settings} });
	my $ini = "; written by PgWing::Test\n[pgwing]\n";
	for my $k (sort keys %s)
	{
		$ini .= "$k = " . (defined $s{$k} ? $s{$k} : '') . "\n";
	}
	$ini .= "\n[backends]\n";
	$ini .= _backend_line($_) for @{ $self->{backends} };
	$ini .= "\n$self->{extra_config}\n" if $self->{extra_config} ne '';
	open my $fh, '>', $self->config_file or die "write config: $!";
	print $fh $ini;
	close $fh;

	open $fh, '>', $self->auth_file or die "write auth file: $!";
	for my $u (sort keys %{ $self->{users} })
	{
		my $p = $self->{users}{$u} // '';
		print $fh "\"$u\" \"$p\"\n";
	}
	close $fh;
	chmod 0600, $self->auth_file;
	return;
}

=pod

=item $pw->start(%opt) => 1 or 0

Write the config and run pgwing in the background (not daemonized; its
stdout and stderr go to C<logfile>), then wait until the rw and ro ports
accept connections (and the unix sockets exist, with C<unix_socket_dir>). Dies
(failing the test) if pgwing exits or does not listen within C<timeout>
seconds (default 30), unless C<fail_ok =E<gt> 1>, in which case it returns 0. C<args =E<gt> [...]> adds command-line flags.
C<fly =E<gt> 'app port=N'> runs C<pgwing --fly 'app port=N'> instead of the
config file, with C<PGWING_RW_PORT>, C<PGWING_RO_PORT>, C<PGWING_AUTH_FILE>
(the file of C<users>) and an empty C<PGWING_UNIX_SOCKET_DIR> in its
environment (C<env> still wins).

=cut

sub start
{
	my ($self, %opt) = @_;
	croak "pgwing $self->{name} already running (pid $self->{pid})"
	  if $self->alive;
	$self->write_config;
	my $bin     = pgwing_bin();
	my @cmd     = ($bin, ($self->{verbose} ? ('-v') : ()), @{ $opt{args} // [] },
		(defined $opt{fly} ? ('--fly', $opt{fly}) : $self->config_file));
	my $timeout = _timeout($opt{timeout} // 30);
	my $logbase = $self->{logfile} =~ s/\.log$//r;
	@cmd = _tool_command($logbase, @cmd);
	my %fly_env = defined $opt{fly}
	  ? (PGWING_RW_PORT => $self->{rw_port}, PGWING_RO_PORT => $self->{ro_port},
		PGWING_AUTH_FILE => $self->auth_file, PGWING_UNIX_SOCKET_DIR => '')
	  : ();
	my %env = (_tool_env($logbase), %fly_env, %{ $self->{env} });

	open my $log, '>>', $self->{logfile} or die "open $self->{logfile}: $!";
	print $log "# " . localtime() . " PgWing::Test starting: @cmd\n";
	close $log;
	print "# starting pgwing $self->{name}: @cmd (rw $self->{rw_port}, ro $self->{ro_port})\n";

	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		open STDIN, '<', '/dev/null';
		open STDOUT, '>>', $self->{logfile} or POSIX::_exit(127);
		open STDERR, '>&', \*STDOUT or POSIX::_exit(127);
		$ENV{$_} = $env{$_} for keys %env;
		exec { $cmd[0] } @cmd or POSIX::_exit(127);
	}
	$self->{pid}         = $pid;
	$self->{exit_status} = undef;

	my $deadline = time() + $timeout;
	while (time() < $deadline)
	{
		if (!$self->alive)
		{
			my $msg =
			  "pgwing $self->{name} exited during startup ("
			  . _status_text($self->{exit_status}) . ")\n"
			  . $self->log_tail(30);
			return 0 if $opt{fail_ok};
			croak $msg;
		}
		return 1 if $self->_is_listening;
		usleep(50_000);
	}
	my $msg =
	  "pgwing $self->{name} not listening on $self->{rw_port} and $self->{ro_port} after ${timeout}s\n"
	  . $self->log_tail(30);
	$self->_kill_hard;
	return 0 if $opt{fail_ok};
	croak $msg;
}

# Ready means every listener accepts: pgwing opens the rw port, the ro port and
# the unix sockets one after the other, and under valgrind a test that used the
# ro port or the socket as soon as the rw port answered found nothing there.
sub _is_listening
{
	my ($self) = @_;
	for my $port ($self->{rw_port}, $self->{ro_port})
	{
		my $s = IO::Socket::INET->new(
			PeerAddr => '127.0.0.1',
			PeerPort => $port,
			Proto    => 'tcp',
			Timeout  => 1) or return 0;
		close $s;
	}
	my $dir = $self->{settings}{unix_socket_dir} // '';
	return 1 if $dir eq '';
	return (-S "$dir/.s.PGSQL.$self->{rw_port}" && -S "$dir/.s.PGSQL.$self->{ro_port}") ? 1 : 0;
}

=pod

=item $pw->alive

True while the pgwing process runs (reaps it when it has exited).

=cut

sub alive
{
	my ($self) = @_;
	return 0 unless defined $self->{pid};
	my $r = waitpid($self->{pid}, WNOHANG);
	return 1 if $r == 0;
	$self->{exit_status} = $? if $r == $self->{pid};
	$self->{pid} = undef;
	return 0;
}

=pod

=item $pw->console($command) => ($exit_code, $stdout, $stderr)

Run one command on the admin console as C<admin> with C<psql -A> (column
headers and the row count included).

=item $pw->admin_rows($command) => [ { column => value, ... }, ... ]

The rows of a console command (C<SHOW BACKENDS>, C<SHOW POOLS>, ...); dies
when the command fails.

=item $pw->backends => { name => { column => value, ... } }

C<SHOW BACKENDS> by backend name.

=cut

sub console
{
	my ($self, $command) = @_;
	my @cmd = ('psql', '-X', '-A', '-d',
		$self->connstr(dbname => 'pgwing', user => 'admin', password => $self->{console_password}),
		'-c', $command);
	my ($out, $err) = ('', '');
	local %ENV = _psql_env();
	IPC::Run::run(\@cmd, '<', \undef, '>', \$out, '2>', \$err, IPC::Run::timeout(_timeout(60)));
	chomp $out;
	chomp $err;
	return ($? >> 8, $out, $err);
}

sub admin_rows
{
	my ($self, $command) = @_;
	my ($rc, $out, $err) = $self->console($command);
	croak "$command failed: $err" if $rc != 0;
	my @lines = split /\n/, $out;
	pop @lines if @lines && $lines[-1] =~ /^\(\d+ rows?\)$/;
	my @cols = split /\|/, shift(@lines), -1;
	return [ map { my @v = split /\|/, $_, -1; +{ map { $cols[$_] => $v[$_] } 0 .. $#cols } }
		  @lines ];
}

=pod

=item $pw->last_query_of_pooled($node, $pid) => text

For a pgwing with one server: wait (10 s) until C<SHOW SERVERS> shows it
pooled (idle), and return what backend C<$pid> of C<$node> ran last, as
C<pg_stat_activity> shows it: C<DISCARD ALL> when the server was reset, the
session's last statement when it was pooled without a reset. The wait is a
test of its own ("the server is pooled").

=cut

sub last_query_of_pooled
{
	my ($self, $node, $pid) = @_;
	Test::More::ok(
		wait_until(
			sub {
				my @sv = @{ $self->admin_rows('SHOW SERVERS') };
				@sv == 1 && $sv[0]{state} eq 'idle';
			},
			10),
		'the server is pooled');
	return $node->safe_psql('postgres', "SELECT query FROM pg_stat_activity WHERE pid = $pid");
}

sub backends
{
	my ($self) = @_;
	return { map { $_->{name} => $_ } @{ $self->admin_rows('SHOW BACKENDS') } };
}

=pod

=item $pw->wait_for_backend($name, %want) => 1 or 0

Poll C<SHOW BACKENDS> until backend C<$name>'s row has every column of
C<%want> (e.g. C<state =E<gt> 'up', role =E<gt> 'replica'>), for up to
C<timeout> seconds (default 10, times PGWING_TIMEOUT_FACTOR).

=cut

sub wait_for_backend
{
	my ($self, $name, %want) = @_;
	my $deadline = time() + _timeout(delete $want{timeout} // 10);
	while (1)
	{
		my $row = $self->backends->{$name};
		return 1 if $row && !grep { ($row->{$_} // '') ne $want{$_} } keys %want;
		return 0 if time() >= $deadline;
		usleep(100_000);
	}
}

=pod

=item start_pgwing_with(%args) => PgWing::Test

C<PgWing::Test-E<gt>new(%args)>, started, with probes every 200 ms unless
C<settings> set C<health_interval>. C<up =E<gt> [ name =E<gt> role, ... ]>:
then asserts (one test each, in that order, names prefixed by C<label>) that
C<SHOW BACKENDS> shows each backend up, in that role (undef: any role).

=cut

sub start_pgwing_with
{
	my (%args) = @_;
	my $up    = delete $args{up} // [];
	my $label = delete $args{label} // '';
	$args{settings} = { health_interval => '200ms', %{ $args{settings} // {} } };
	my $pw = PgWing::Test->new(%args);
	$pw->start;
	for (my $i = 0; $i < @$up; $i += 2)
	{
		my ($name, $role) = @$up[ $i, $i + 1 ];
		local $Test::Builder::Level = $Test::Builder::Level + 1;
		ok($pw->wait_for_backend($name, state => 'up', (defined $role ? (role => $role) : ())),
			"${label}backend $name probed up" . (defined $role ? " as $role" : ''));
	}
	return $pw;
}

=pod

=item $pw->psql_concurrently($n) => how many answered

Start C<$n> psql clients at once (client I<i> asks C<SELECT i + 100>) and
return how many got their own answer; the others are diag'ed.

=cut

sub psql_concurrently
{
	my ($self, $n) = @_;
	my @runs;
	local %ENV = _psql_env();
	for my $i (1 .. $n)
	{
		my ($out, $err) = ('', '');
		push @runs,
		  [ IPC::Run::start([ 'psql', '-XAtq', '-d', $self->connstr, '-c', "SELECT $i + 100" ],
				'>', \$out, '2>', \$err), \$out, \$err, $i ];
	}
	my $answered = 0;
	for my $r (@runs)
	{
		$r->[0]->finish;
		my ($out, $err, $i) = (${ $r->[1] }, ${ $r->[2] }, $r->[3]);
		chomp $out;
		if ($out eq $i + 100) { $answered++; }
		else { diag("client $i: out '$out', err '$err'"); }
	}
	return $answered;
}

=pod

=item $pw->rss_kb, $pw->open_fds, $pw->cpu_seconds

What the running pgwing holds now, from F</proc>: its resident memory (VmRSS,
kB), its open file descriptors, and the CPU time (user + system, seconds) it
has used so far; for bounds on what an attack costs it.

=cut

sub rss_kb
{
	my ($self) = @_;
	open my $fh, '<', "/proc/$self->{pid}/status" or croak "status: $!";
	while (<$fh>) { return $1 if /^VmRSS:\s+(\d+)/; }
	croak "no VmRSS for pgwing $self->{name}";
}

sub open_fds
{
	my ($self) = @_;
	my @fds = glob("/proc/$self->{pid}/fd/*");
	return scalar @fds;
}

my $clk_tck;

sub cpu_seconds
{
	my ($self) = @_;
	$clk_tck //= `getconf CLK_TCK` + 0 || 100;
	open my $fh, '<', "/proc/$self->{pid}/stat" or croak "stat: $!";
	my $stat = <$fh>;
	$stat =~ s/^.*\) //;    # after "pid (comm) "; fields from 3 on
	my @f = split / /, $stat;
	return ($f[11] + $f[12]) / $clk_tck;
}

=pod

=item $pw->exit_status

The raw wait status of the last pgwing process that exited (undef if none).

=cut

sub exit_status { return $_[0]{exit_status}; }

sub _status_text
{
	my $st = shift;
	return 'unknown status' unless defined $st;
	return 'killed by signal ' . ($st & 127) . (($st & 128) ? ', core dumped' : '')
	  if $st & 127;
	return 'exit code ' . ($st >> 8);
}

sub _wait_exit
{
	my ($self, $secs) = @_;
	my $deadline = time() + $secs;
	while (time() < $deadline)
	{
		return 1 unless $self->alive;
		usleep(20_000);
	}
	return !$self->alive;
}

sub _kill_hard
{
	my ($self) = @_;
	return unless $self->alive;
	kill 'KILL', $self->{pid};
	$self->_wait_exit(5);
	return;
}

=pod

=item $pw->stop(%opt)

Stop pgwing, asserting (as two TAP tests) that it was still running -- a
crash is a failure -- and that it exits cleanly (exit code 0 or by the
signal) within 10 s (times PGWING_TIMEOUT_FACTOR) of the signal. C<signal =E<gt> 'TERM'> for a graceful
drain; default C<'INT'> (fast stop).

=cut

sub stop
{
	my ($self, %opt) = @_;
	my $sig  = $opt{signal} // 'INT';
	my $name = $self->{name};
	if (!$self->alive)
	{
		fail("pgwing $name still running at stop");
		diag("pgwing $name had exited: "
			  . _status_text($self->{exit_status}) . "\n"
			  . $self->log_tail(30));
		return;
	}
	pass("pgwing $name still running at stop");
	kill $sig, $self->{pid};
	my $wait = _timeout(10);
	if (!$self->_wait_exit($wait))
	{
		fail("pgwing $name exits within $wait s of SIG$sig");
		$self->_kill_hard;
		return;
	}
	my $st = $self->{exit_status};
	my %signo = (INT => 2, TERM => 15);
	ok(defined $st && ($st == 0 || ($st & 127) == $signo{$sig}),
		"pgwing $name exits cleanly on SIG$sig")
	  or diag("pgwing $name: " . _status_text($st) . "\n" . $self->log_tail(30)
		  . join('', map { "# report in $_\n" } glob($self->{logfile} =~ s/\.log$/.*.*/r)));
	return;
}

=pod

=item $pw->restart(%opt)

stop then start.

=cut

sub restart
{
	my ($self, %opt) = @_;
	$self->stop(%opt);
	return $self->start(%opt);
}

=pod

=item $pw->kill9

Kill pgwing without any checks.

=cut

sub kill9
{
	my ($self) = @_;
	$self->_kill_hard;
	return;
}

=pod

=item $pw->signal($sig)

Send a signal (e.g. 'HUP') to the running pgwing.

=cut

sub signal
{
	my ($self, $sig) = @_;
	croak "pgwing $self->{name} not running" unless $self->alive;
	return kill $sig, $self->{pid};
}

=pod

=item $pw->log_content, $pw->log_tail($lines), $pw->log_contains(qr/.../, $offset)

The log file's text; its last lines; whether it matches (from byte
C<$offset>, default 0). C<$pw-E<gt>log_position> gives the current size, to look
only at lines written after some action.

=item $pw->wait_for_log(qr/.../, $offset, $timeout) => 1 or 0

=cut

sub log_content
{
	my ($self) = @_;
	return '' unless -f $self->{logfile};
	return PostgreSQL::Test::Utils::slurp_file($self->{logfile});
}

sub log_position
{
	my ($self) = @_;
	return -s $self->{logfile} // 0;
}

sub log_tail
{
	my ($self, $n) = @_;
	$n //= 30;
	my @l = split /\n/, $self->log_content;
	@l = @l[ -$n .. -1 ] if @l > $n;
	return join('', map { "# log: $_\n" } @l);
}

sub log_contains
{
	my ($self, $re, $offset) = @_;
	my $c = $self->log_content;
	$c = substr($c, $offset) if $offset && $offset <= length $c;
	return $c =~ $re ? 1 : 0;
}

sub wait_for_log
{
	my ($self, $re, $offset, $timeout) = @_;
	my $deadline = time() + _timeout($timeout // 10);
	while (time() < $deadline)
	{
		return 1 if $self->log_contains($re, $offset);
		usleep(50_000);
	}
	return $self->log_contains($re, $offset);
}

=pod

=item $pw->connstr(%o)

A libpq connection string to pgwing: C<target> ('rw' default, or 'ro'),
C<user> (default os_user()), C<dbname> (default postgres), C<password>,
C<application_name>, C<options>, C<sslmode>, C<connect_timeout>, C<extra>
(raw text appended).

=cut

sub connstr
{
	my ($self, %o) = @_;
	my $s = 'host=127.0.0.1 port=' . $self->port($o{target});
	$s .= ' user=' . _conn_quote($o{user} // os_user());
	$s .= ' dbname=' . _conn_quote($o{dbname} // 'postgres');
	for my $k (qw(password application_name options sslmode connect_timeout))
	{
		$s .= " $k=" . _conn_quote($o{$k}) if defined $o{$k};
	}
	$s .= " $o{extra}" if defined $o{extra};
	return $s;
}

# psql's environment: nothing from the caller's libpq env leaks in.
sub _psql_env
{
	my %env = %ENV;
	delete $env{$_}
	  for qw(PGHOST PGPORT PGUSER PGDATABASE PGPASSWORD PGSERVICE PGSSLMODE
	  PGOPTIONS PGHOSTADDR PGCONNECT_TIMEOUT);
	return %env;
}

=pod

=item $pw->psql($sql, %o) => ($rc, $stdout, $stderr) (list) or $rc (scalar)

Run C<psql -XAtq -v ON_ERROR_STOP=1 -f -> through pgwing with C<$sql> on
stdin. C<%o> are connstr options plus C<timeout> (seconds, default
$PostgreSQL::Test::Utils::timeout_default) and C<extra_params> (array ref).
stdout and stderr are chomped. On timeout the rc is -1 and stderr says so.

=item $pw->safe_psql($sql, %o) => $stdout

Same, but dies with psql's stderr unless psql exits 0.

=cut

sub psql
{
	my ($self, $sql, %o) = @_;
	my @cmd = ('psql', '-XAtq', '-v', 'ON_ERROR_STOP=1', '-d', $self->connstr(%o),
		@{ $o{extra_params} // [] }, '-f', '-');
	my ($out, $err) = ('', '');
	my $rc;
	{
		local %ENV = _psql_env();
		my $h = IPC::Run::start(\@cmd, '<', \$sql, '>', \$out, '2>', \$err,
			IPC::Run::timeout($o{timeout} // $PostgreSQL::Test::Utils::timeout_default));
		if (eval { $h->finish; 1 })
		{
			$rc = $h->result(0);
		}
		else
		{
			$h->kill_kill;
			$rc = -1;
			$err .= "\npsql timed out or failed: $@";
		}
	}
	chomp $out;
	chomp $err;
	return wantarray ? ($rc, $out, $err) : $rc;
}

sub safe_psql
{
	my ($self, $sql, %o) = @_;
	my ($rc, $out, $err) = $self->psql($sql, %o);
	croak "psql through pgwing failed (rc $rc)\nsql: $sql\nstderr: $err\n"
	  . $self->log_tail(15)
	  if $rc != 0;
	return $out;
}

=pod

=item $pw->background_psql(%o) => PostgreSQL::Test::BackgroundPsql

A psql session kept open through pgwing (connstr options in C<%o>, plus
C<timeout>); use C<query_safe>, C<query_until>, C<quit>.

=cut

sub background_psql
{
	my ($self, %o) = @_;
	my @cmd = ('psql', '-XAtq', '-v', 'ON_ERROR_STOP=1', '-d', $self->connstr(%o),
		@{ $o{extra_params} // [] }, '-f', '-');
	local %ENV = _psql_env();
	# The timer runs for the whole session, not per query: a session kept open
	# across a long test (089's thousands of logins under ASan) must outlive it.
	return PgWing::Test::BackgroundCaller::start_psql(\@cmd, $o{timeout} // _timeout(900));
}

# BackgroundPsql->new only accepts callers that are a PostgreSQL::Test::Cluster.
package PgWing::Test::BackgroundCaller;
our @ISA = ('PostgreSQL::Test::Cluster');

sub start_psql
{
	my ($cmd, $timeout) = @_;
	return PostgreSQL::Test::BackgroundPsql->new(0, $cmd, $timeout, 1);
}

package PgWing::Test;

=pod

=item $pw->http_get($path) => ($status, $body)

GET C<$path> (C</metrics>, C</readyz>, ...) from the C<metrics_listen>
setting's address with curl; C<$status> is the HTTP code (0 when nothing
answered).

=cut

sub http_get
{
	my ($self, $path) = @_;
	my $listen = $self->{settings}{metrics_listen}
	  or croak "pgwing $self->{name} has no metrics_listen";
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'curl', '-sS', '-m', _timeout(10), '-w', '\n%{http_code}',
			"http://$listen$path" ], '>', \$out, '2>', \$err);
	my ($body, $status) = $out =~ /^(.*)\n(\d+)$/s ? ($1, $2) : ('', 0);
	return ($status + 0, $body);
}

=pod

=item parse_metrics($text) => (\%type, \%samples, \@problems)

Check Prometheus text line by line: every sample belongs to a family declared
by C<# TYPE>, names and labels are well-formed, values are numbers.
C<%type> maps a family to its type, C<%samples> C<name{labels}> (as written)
to its value; C<@problems> lists what is wrong.

=cut

sub parse_metrics
{
	my ($text) = @_;
	my (%type, %samples, @problems);
	for my $line (split /\n/, $text)
	{
		if ($line =~ /^# TYPE (\w+) (counter|gauge|histogram)$/)
		{
			push @problems, "family $1 declared twice" if $type{$1};
			$type{$1} = $2;
			next;
		}
		next if $line =~ /^# HELP \w+ .+$/;
		if ($line =~ /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_]\w*="(?:[^"\\\n]|\\.)*",?)*\})? (\S+)$/)
		{
			my ($name, $labels, $value) = ($1, $2 // '', $3);
			my $family = $name;
			$family =~ s/_(bucket|sum|count)$// unless $type{$name};
			push @problems, "$name has no TYPE" unless $type{$family};
			push @problems, "$name: bad value $value"
			  unless $value =~ /^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$|^[-+]?Inf$|^NaN$/;
			push @problems, "$name$labels twice" if exists $samples{"$name$labels"};
			$samples{"$name$labels"} = $value;
			next;
		}
		push @problems, "unparsable line: $line";
	}
	return (\%type, \%samples, \@problems);
}

=pod

=item $pw->raw_connect(%o) => IO::Socket::INET

A plain TCP socket to pgwing's C<target> port (for protocol-level tests).

=cut

sub raw_connect
{
	my ($self, %o) = @_;
	my $s = IO::Socket::INET->new(
		PeerAddr => '127.0.0.1',
		PeerPort => $self->port($o{target}),
		Proto    => 'tcp',
		Timeout  => 10) or croak "connect to pgwing: $!";
	$s->autoflush(1);
	return $s;
}

=pod

=back

=head1 PROTOCOL HELPERS (functions)

=over

=item startup_packet(user => 'u', database => 'd', ...) => bytes

A v3 StartupMessage with the given parameters (in that order).

=item read_startup($sock) => (\%params, $packet)

On the server side of a fake backend: answer SSLRequest and GSSENCRequest
with C<N>, then read the StartupMessage. Returns its parameters and its
bytes (to pass on to a real server), or () at EOF or on a malformed packet.

=item pg_message($type, $body) => bytes

A typed message: type byte, int32 length, body.

=item read_message($sock, $timeout) => ($type, $body)

Read one backend message. On EOF returns (undef, 'eof'); on timeout
(default 10 s) (undef, 'timeout').

=item error_fields($body) => { S => 'FATAL', C => '28P01', M => '...', ... }

Fields of an ErrorResponse/NoticeResponse body.

=item raw_login($sock, user => , database => , password => , timeout => ) => \%result

Send a StartupMessage (plus C<params =E<gt> {...}>) and answer AuthenticationOk,
cleartext, md5 and SCRAM-SHA-256 requests until ReadyForQuery. Returns
{ ok => 1, params => {...}, pid => , key => , auth => [codes seen],
server_verified => 1 (SCRAM server signature checked) } or { ok => 0,
error => \%fields } or { ok => 0, eof => 1 } or { ok => 0, timeout => 1 }.

=item raw_exchange($sock, $n, @messages) => ([$type, $body], ...)

Send the framed messages at once (a pipeline) and read the answers up to the
C<$n>-th ReadyForQuery; dies on EOF or timeout.

=item data_rows(@answers) => ('v1|v2', ...)

The DataRow values of raw_exchange's answers, one string per row.

=item query_message($sql), extended_messages($sql) => framed bytes

A simple Query; the unnamed statement's Parse, Bind, Execute and Sync.

=back

=cut

sub raw_exchange
{
	my ($sock, $n, @msgs) = @_;
	print $sock join('', @msgs);
	my @got;
	while ($n > 0)
	{
		my ($t, $b) = read_message($sock, 10);
		croak "no answer: $b" unless defined $t;
		push @got, [ $t, $b ];
		$n-- if $t eq 'Z';
	}
	return @got;
}

sub data_rows
{
	return map {
		my (undef, @v) = unpack('n (N/a)*', $_->[1]);
		join '|', @v
	} grep { $_->[0] eq 'D' } @_;
}

sub query_message { return pg_message('Q', "$_[0]\0"); }

sub extended_messages
{
	my ($sql) = @_;
	return (pg_message('P', "\0$sql\0\0\0"), pg_message('B', "\0\0\0\0\0\0\0\0"),
		pg_message('E', "\0\0\0\0\0"), pg_message('S'));
}

sub startup_packet
{
	my @kv   = @_;
	my $body = pack('N', 196608);
	$body .= "$_\0" for @kv;
	$body .= "\0";
	return pack('N', length($body) + 4) . $body;
}

sub read_startup
{
	my ($sock) = @_;
	while (1)
	{
		return () unless (sysread($sock, my $hdr, 4) // 0) == 4;
		my $len = unpack('N', $hdr);
		return () if $len < 8 || $len > 10000;
		my $body = '';
		while (length($body) < $len - 4)
		{
			my $r = sysread($sock, $body, $len - 4 - length($body), length($body));
			return () unless $r;
		}
		my $code = unpack('N', $body);
		if ($code == 80877103 || $code == 80877104)
		{
			syswrite($sock, 'N');
			next;
		}
		my %params = split /\0/, substr($body, 4);
		return (\%params, $hdr . $body);
	}
}

sub pg_message
{
	my ($type, $body) = @_;
	$body //= '';
	return $type . pack('N', length($body) + 4) . $body;
}

# Read exactly $n bytes, or fewer at EOF; undef on timeout.
sub _read_n
{
	my ($sock, $n, $deadline) = @_;
	my $buf = '';
	my $sel = IO::Select->new($sock);
	while (length($buf) < $n)
	{
		my $left = $deadline - time();
		return undef if $left <= 0;
		next unless $sel->can_read($left);
		my $r = sysread($sock, $buf, $n - length($buf), length($buf));
		if (!defined $r)
		{
			next if $! == EINTR || $! == EAGAIN || $! == EWOULDBLOCK;
			return $buf;    # ECONNRESET etc.: treat like EOF
		}
		return $buf if $r == 0;
	}
	return $buf;
}

sub read_message
{
	my ($sock, $timeout) = @_;
	my $deadline = time() + _timeout($timeout // 10);
	my $hdr = _read_n($sock, 5, $deadline);
	return (undef, 'timeout') unless defined $hdr;
	return (undef, 'eof') if length($hdr) < 5;
	my ($type, $len) = unpack('a1 N', $hdr);
	return (undef, "bad length $len") if $len < 4 || $len > 1 << 30;
	my $body = _read_n($sock, $len - 4, $deadline);
	return (undef, 'timeout') unless defined $body;
	return (undef, 'eof') if length($body) < $len - 4;
	return ($type, $body);
}

# Take the first whole message off the bytes read so far from a socket (many
# sockets at once, with select): ($type, $body), or () while it is incomplete.
sub take_message
{
	my ($bufref) = @_;
	return () if length($$bufref) < 5;
	my ($type, $len) = unpack('a1 N', $$bufref);
	return () if length($$bufref) < $len + 1;
	my $body = substr($$bufref, 5, $len - 4);
	substr($$bufref, 0, $len + 1) = '';
	return ($type, $body);
}

sub error_fields
{
	my ($body) = @_;
	my %f;
	for my $field (split /\0/, $body)
	{
		next if $field eq '';
		$f{ substr($field, 0, 1) } = substr($field, 1);
	}
	return \%f;
}

sub raw_login
{
	my ($sock, %o) = @_;
	my $user = $o{user} // os_user();
	my @params = (user => $user, database => $o{database} // 'postgres');
	push @params, %{ $o{params} } if $o{params};
	print $sock startup_packet(@params);
	my %res = (ok => 0, params => {});
	while (1)
	{
		my ($t, $b) = read_message($sock, $o{timeout} // 10);
		if (!defined $t)
		{
			$res{$b} = 1;
			return \%res;
		}
		if ($t eq 'R')
		{
			my $code = unpack('N', $b);
			push @{ $res{auth} }, $code;
			next if $code == 0;
			if ($code == 10 || $code == 11 || $code == 12)
			{
				my $err = _scram_step($sock, \%res, $code, substr($b, 4),
					$o{password} // '');
				if ($err)
				{
					$res{scram_error} = $err;
					return \%res;
				}
			}
			elsif ($code == 3)
			{
				print $sock pg_message('p', ($o{password} // '') . "\0");
			}
			elsif ($code == 5)
			{
				my $salt = substr($b, 4, 4);
				my $inner = md5_hex(($o{password} // '') . $user);
				print $sock pg_message('p', 'md5' . md5_hex($inner . $salt) . "\0");
			}
			else
			{
				$res{unsupported} = "auth code $code";
				return \%res;
			}
		}
		elsif ($t eq 'S')
		{
			my ($k, $v) = split /\0/, $b;
			$res{params}{$k} = $v;
		}
		elsif ($t eq 'K')
		{
			@res{qw(pid key)} = unpack('N N', $b);
		}
		elsif ($t eq 'E')
		{
			$res{error} = error_fields($b);
			return \%res;
		}
		elsif ($t eq 'Z')
		{
			$res{ok} = 1;
			return \%res;
		}
	}
}

# One step of a SCRAM-SHA-256 exchange (RFC 5802/7677, no channel binding).
# Returns an error string, or '' to continue.
sub _scram_step
{
	my ($sock, $res, $code, $data, $password) = @_;
	my $st = $res->{scram} //= {};
	if ($code == 10)
	{
		my @mechs = grep { $_ ne '' } split /\0/, $data;
		return "no SCRAM-SHA-256 in SASL mechanisms (@mechs)"
		  unless grep { $_ eq 'SCRAM-SHA-256' } @mechs;
		$st->{nonce}       = MIME::Base64::encode_base64(join('', map { chr(int(rand(256))) } 1 .. 18), '');
		$st->{client_first_bare} = "n=,r=$st->{nonce}";
		my $msg = "n,,$st->{client_first_bare}";
		print $sock pg_message('p',
			"SCRAM-SHA-256\0" . pack('N', length $msg) . $msg);
		return '';
	}
	if ($code == 11)
	{
		my %a = map { /^(\w)=(.*)$/ ? ($1, $2) : () } split /,/, $data;
		return "bad server-first-message: $data"
		  unless defined $a{r} && defined $a{s} && defined $a{i};
		return "server nonce does not extend ours" unless index($a{r}, $st->{nonce}) == 0;
		my $salt   = MIME::Base64::decode_base64($a{s});
		my $salted = _pbkdf2_sha256($password, $salt, $a{i});
		my $client_key = Digest::SHA::hmac_sha256('Client Key', $salted);
		my $stored_key = Digest::SHA::sha256($client_key);
		my $without_proof = "c=biws,r=$a{r}";
		my $auth_message  = "$st->{client_first_bare},$data,$without_proof";
		my $signature = Digest::SHA::hmac_sha256($auth_message, $stored_key);
		my $proof     = $client_key ^ $signature;
		$st->{server_signature} = Digest::SHA::hmac_sha256($auth_message,
			Digest::SHA::hmac_sha256('Server Key', $salted));
		print $sock pg_message('p',
			"$without_proof,p=" . MIME::Base64::encode_base64($proof, ''));
		return '';
	}
	# code 12: SASLFinal
	my ($v) = $data =~ /v=([^,]+)/;
	$res->{server_verified} =
	  (defined $v && defined $st->{server_signature}
		  && MIME::Base64::decode_base64($v) eq $st->{server_signature}) ? 1 : 0;
	return '';
}

sub _pbkdf2_sha256
{
	my ($password, $salt, $iter) = @_;
	my $u = Digest::SHA::hmac_sha256($salt . pack('N', 1), $password);
	my $r = $u;
	for (2 .. $iter)
	{
		$u = Digest::SHA::hmac_sha256($u, $password);
		$r ^= $u;
	}
	return $r;
}

# Leave no pgwing behind if a test dies before stop(). Our END runs before
# Cluster.pm's (LIFO), so pgwing goes before its backends.
END
{
	my $code = $?;
	for my $pw (@all_instances)
	{
		$pw->_kill_hard if defined $pw->{pid};
	}
	$? = $code;
}

package PgWing::Test::Child;

# A helper process of a test (its IPC::Run harness in {h}): stop() ends it,
# and every one still running ends with the test.
my @children;

sub track
{
	my ($self) = @_;
	push @children, $self;
	return;
}

sub stop
{
	my ($self) = @_;
	$self->{h}->kill_kill if $self->{h};
	$self->{h} = undef;
	return;
}

END
{
	local $?;
	$_->stop for @children;
}

=pod

=head1 A NAME SERVER (PgWing::Test::FakeDns)

C<< my $dns = PgWing::Test::FakeDns->new($name, $records) >> starts
F<tests/tools/fake_dns.pl> (Net::DNS) on 127.0.0.1 and a free port, serving
C<$records> (zone-file lines); C<< $dns->records($text) >> replaces them at once
and returns the time; C<< $dns->port >>; C<< $dns->stop >> and C<< $dns->start >>
(the same port and records) make an outage. It is stopped when the test ends.

=cut

package PgWing::Test::FakeDns;

use Carp;
use File::Basename qw(dirname);

use parent -norequire, 'PgWing::Test::Child';

sub new
{
	my ($class, $name, $records) = @_;
	my $self = bless {
		port => PostgreSQL::Test::Cluster::get_free_port(),
		zone => "$PostgreSQL::Test::Utils::tmp_check/${name}_zone",
	}, $class;
	$self->records($records // '');
	$self->start;
	$self->track;
	return $self;
}

sub port { return $_[0]{port}; }

sub records
{
	my ($self, $text) = @_;
	open my $fh, '>', "$self->{zone}.new" or croak "write $self->{zone}: $!";
	print $fh $text;
	close $fh;
	rename "$self->{zone}.new", $self->{zone} or croak "rename: $!";
	return Time::HiRes::time();
}

# The tool sits beside the test files' directory (tests/t/../tools).
sub start
{
	my ($self) = @_;
	my $tool = dirname($0) . '/../tools/fake_dns.pl';
	my $out = '';
	$self->{h} =
	  IPC::Run::start([ 'perl', $tool, $self->{port}, $self->{zone} ], '>', \$out, '2>', \$out);
	$self->{h}->pump until $out =~ /listening/;
	return;
}


=head1 A MACHINES API (PgWing::Test::FakeFlyApi)

C<< my $api = PgWing::Test::FakeFlyApi->new($name, $token, 'app/machine' => $node, ...) >>
starts F<tests/tools/fake_fly_api.pl> on 127.0.0.1 (a free port), which starts
each node's Postgres (its data directory, log and port) when asked to start
the machine, and accepts the C<Authorization> header C<Bearer $token>.
C<< $api->url >>; C<< $api->requests >>: the requests so far, as lines
C<METHOD PATH?QUERY\tAUTHORIZATION>; C<< $api->starts('app/machine') >>: how
many starts were asked for; C<< $api->set($file, $text) >> writes a state file
of the tool (C<token>, C<throttle>; undef removes it);
C<< $api->start_to_ready('app/machine') >>: seconds from the last start asked
for to its Postgres being ready, as its log says (waits for it; undef if it
never comes). It is stopped, with the Postgres it started, when the test ends.

=cut

package PgWing::Test::FakeFlyApi;

use Carp;
use File::Basename qw(dirname);
use File::Path qw(rmtree);
use Time::Local ();

use parent -norequire, 'PgWing::Test::Child';

sub new
{
	my ($class, $name, $token, %machines) = @_;
	# tmp_check outlives a run: count this run's requests only.
	my $self = bless { state => "$PostgreSQL::Test::Utils::tmp_check/${name}_fly_api",
		nodes => \%machines }, $class;
	rmtree($self->{state});
	mkdir $self->{state} or croak "mkdir $self->{state}: $!";
	$self->set(token => "Bearer $token");
	my @specs = map { "$_=" . join(',', $machines{$_}->data_dir, $machines{$_}->logfile,
			$machines{$_}->port) } sort keys %machines;
	my $out = '';
	$self->{h} = IPC::Run::start(
		[ 'perl', dirname($0) . '/../tools/fake_fly_api.pl', $self->{state}, @specs ],
		'>', \$out, '2>', \$out);
	$self->{h}->pump until $out =~ /listening on (\d+)/;
	$self->{url} = "http://127.0.0.1:$1";
	$self->track;
	return $self;
}

sub url { return $_[0]{url}; }

# The tool, and the Postgres it started for a machine (pg_ctl, so its node does
# not know it runs: the node's own teardown would leave it running).
sub stop
{
	my ($self) = @_;
	$self->SUPER::stop;
	for my $node (values %{ $self->{nodes} })
	{
		next unless -f $node->data_dir . '/postmaster.pid';
		IPC::Run::run([ 'pg_ctl', '-D', $node->data_dir, '-m', 'immediate', 'stop' ],
			'>', '/dev/null', '2>', '/dev/null');
	}
	return;
}

sub set
{
	my ($self, $file, $text) = @_;
	my $path = "$self->{state}/$file";
	return unlink $path unless defined $text;
	open my $fh, '>', $path or croak "write $path: $!";
	print $fh "$text\n";
	close $fh;
	return;
}

sub _lines
{
	my ($self, $file) = @_;
	open my $in, '<', "$self->{state}/$file" or return ();
	chomp(my @l = <$in>);
	return @l;
}

sub requests { return $_[0]->_lines('requests'); }

sub starts
{
	my ($self, $machine) = @_;
	my ($app, $id) = split m{/}, $machine;
	return scalar grep { m{^POST /v1/apps/\Q$app\E/machines/\Q$id\E/start\t} } $self->requests;
}

# When Postgres said it was ready, by its log (to the millisecond, in UTC), or
# by the tool's note, which its pg_isready loop takes late on a busy machine.
sub _ready_time
{
	my ($self, $machine, $after) = @_;
	open my $log, '<', $self->{nodes}{$machine}->logfile or return undef;
	while (my $line = <$log>)
	{
		next
		  unless $line =~ /^(\d+)-(\d+)-(\d+) (\d+):(\d+):(\d+\.\d+) (?:UTC|GMT) .*ready to accept connections/;
		my $t = Time::Local::timegm(int($6), $5, $4, $3, $2 - 1, $1) + ($6 - int($6));
		return $t if $t >= $after;
	}
	my ($note) = grep { $_ >= $after } map { /^ready (\S+)/ ? $1 : () } $self->_lines('times');
	return $note;
}

sub start_to_ready
{
	my ($self, $machine) = @_;
	my $until = Time::HiRes::time() + PgWing::Test::time_bound(10);
	while (Time::HiRes::time() < $until)
	{
		my ($start) = reverse map { /^start (\S+)/ ? $1 : () } $self->_lines('times');
		my $ready = defined $start ? $self->_ready_time($machine, $start) : undef;
		return $ready - $start if defined $ready;
		Time::HiRes::usleep(20_000);
	}
	return undef;
}


=head1 A FAR SERVER (PgWing::Test::DelayRelay)

C<< my $relay = PgWing::Test::DelayRelay->new($node, $one_way_ms) >> starts
F<tests/tools/delay_relay> (built by C<make check>) on 127.0.0.1 and a free
port. It relays each connection to C<$node> (anything with C<host> and
C<port>: a PostgreSQL::Test::Cluster, another relay) and holds every byte
C<$one_way_ms> in each direction, so 15 adds 30 ms to every round trip; the
TCP handshake to the node is not delayed. The relay has C<host> and C<port>
as a node does, so it stands for one in C<backends>
(C<< [ primary => $relay ] >>), and C<< $relay->connstr >> gives
C<host=127.0.0.1 port=N> (e.g. for a replica's C<primary_conninfo>).
C<< $relay->stop >> ends it and its connections at once;
C<< $relay->start >> starts it again on the same port. Its stderr goes to
C<tmp_check/log/TESTNAME_relay_PORT.log>. It is stopped when the test ends.

=cut

package PgWing::Test::DelayRelay;

use Carp;

use parent -norequire, 'PgWing::Test::Child';

sub new
{
	my ($class, $target, $one_way_ms) = @_;
	my $self = bless {
		target => [ $target->host, $target->port ],
		delay  => $one_way_ms,
		port   => PostgreSQL::Test::Cluster::get_free_port(),
	}, $class;
	$self->start;
	$self->track;
	return $self;
}

sub host    { return '127.0.0.1'; }
sub port    { return $_[0]{port}; }
sub connstr { return "host=127.0.0.1 port=$_[0]{port}"; }

sub start
{
	my ($self) = @_;
	my $log = "$PostgreSQL::Test::Utils::log_path/" . PgWing::Test::_testname()
	  . "_relay_$self->{port}.log";
	my $out = '';
	$self->{h} = IPC::Run::start(
		[ PgWing::Test::tool_bin('delay_relay'), $self->{port}, @{ $self->{target} },
			$self->{delay} ],
		'<', \undef, '>', \$out, '2>>', $log);
	my $ready = PgWing::Test::wait_until(
		sub { $self->{h}->pump_nb if $self->{h}->pumpable; $out =~ /listening on/ }, 10);
	if (!$ready)
	{
		$self->stop;
		croak "delay_relay on port $self->{port} did not start; see $log";
	}
	return;
}


package PgWing::Test;

1;
