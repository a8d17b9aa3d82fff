#!/usr/bin/perl
# A stand-in for the Fly Machines API on loopback, for tests of wake=fly-api.
#
#   fake_fly_api.pl STATE_DIR APP/MACHINE=DATADIR,PGLOG,PORT ...
#
# Prints "listening on PORT" once it accepts. Answers, for a known machine:
#   POST /v1/apps/APP/machines/MACHINE/start   pg_ctl start (not waiting), 200
#   GET  .../wait?state=started&timeout=S        200 once Postgres takes logins, 408
#                                                after min(S, 1) s
# Anything else, or an Authorization header other than STATE_DIR/token's
# content, gets 401 (404 for an unknown machine). Every request is appended to
# STATE_DIR/requests as "METHOD PATH?QUERY<TAB>AUTHORIZATION"; the times the
# start was asked for and Postgres was first seen ready to STATE_DIR/times. While
# STATE_DIR/throttle holds a number N > 0, a start gets 429 and N goes down.
use strict;
use warnings;
use HTTP::Daemon;
use HTTP::Response;
use POSIX ();
use Time::HiRes qw(time usleep);

my ($dir, @machines) = @ARGV;
die "usage: $0 STATE_DIR APP/MACHINE=DATADIR,PGLOG,PORT ...\n" unless defined $dir && @machines;
my %machine;
for (@machines)
{
	my ($key, $spec) = split /=/, $_, 2;
	my ($datadir, $pglog, $port) = split /,/, $spec;
	$machine{$key} = { datadir => $datadir, pglog => $pglog, port => $port };
}

sub slurp
{
	my ($name) = @_;
	open my $in, '<', "$dir/$name" or return undef;
	my $text = do { local $/; <$in> };
	$text =~ s/\n\z//;
	return $text;
}

sub append
{
	my ($name, $line) = @_;
	open my $out, '>>', "$dir/$name" or die "$dir/$name: $!";
	print $out "$line\n";
	close $out;
}

# Ready for logins, not merely listening (pg_isready says "rejecting" while it starts up).
sub is_accepting
{
	my ($m) = @_;
	return system('pg_isready', '-q', '-h', '127.0.0.1', '-p', $m->{port}) == 0;
}

# Start Postgres, not waiting; a child notes when it is ready (whether or not
# anyone waits for it: pgwing's probe may see it first and stop waiting).
sub start_postgres
{
	my ($m) = @_;
	my $pid = fork // die "fork: $!";
	return if $pid;
	$SIG{CHLD} = 'DEFAULT';
	system("pg_ctl -D '$m->{datadir}' -l '$m->{pglog}' -W start >/dev/null 2>&1");
	my $until = time() + 60;
	usleep(10_000) until is_accepting($m) || time() > $until;
	append('times', sprintf('ready %.6f', time())) if is_accepting($m);
	POSIX::_exit(0);
}

sub answer
{
	my ($r) = @_;
	my $auth = $r->header('Authorization') // '';
	append('requests', $r->method . ' ' . $r->uri->path_query . "\t$auth");
	return HTTP::Response->new(401, 'Unauthorized') unless $auth eq (slurp('token') // '');
	my ($app, $id, $action) = $r->uri->path =~ m{^/v1/apps/([^/]+)/machines/([^/]+)/(start|wait)$};
	my $key = defined $app ? "$app/$id" : undef;
	return HTTP::Response->new(404, 'Not Found') unless defined $key && $machine{$key};
	my $m = $machine{$key};
	if ($action eq 'start' && $r->method eq 'POST')
	{
		my $throttle = slurp('throttle') // 0;
		if ($throttle > 0)
		{
			open my $out, '>', "$dir/throttle" or die;
			print $out $throttle - 1, "\n";
			close $out;
			return HTTP::Response->new(429, 'Too Many Requests');
		}
		append('times', sprintf('start %.6f', time()));
		start_postgres($m);
		return HTTP::Response->new(200, 'OK', [ 'Content-Type' => 'application/json' ],
			'{"previous_state":"stopped"}');
	}
	if ($action eq 'wait' && $r->method eq 'GET')
	{
		my ($timeout) = ($r->uri->query // '') =~ /timeout=(\d+)/;
		# Short, so that pgwing sees 408s and asks again.
		my $until = time() + (defined $timeout && $timeout < 1 ? $timeout : 1);
		do
		{
			if (is_accepting($m))
			{
				return HTTP::Response->new(200, 'OK', [ 'Content-Type' => 'application/json' ],
					'{"ok":true}');
			}
			usleep(10_000);
		} while (time() < $until);
		return HTTP::Response->new(408, 'Request Timeout');
	}
	return HTTP::Response->new(405, 'Method Not Allowed');
}

$SIG{CHLD} = 'IGNORE';    # start_postgres's children reap themselves
my $daemon = HTTP::Daemon->new(LocalAddr => '127.0.0.1', LocalPort => 0, ReuseAddr => 1)
  or die "HTTP::Daemon: $!";
$| = 1;
print 'listening on ', $daemon->sockport, "\n";
while (my $c = $daemon->accept)
{
	while (my $r = $c->get_request)
	{
		$c->send_response(answer($r));
	}
	$c->close;
}
