#!/usr/bin/perl
# A name server on loopback for the discovery tests: answers from a file of
# resource records in zone-file syntax ("vms.app.internal. 5 IN TXT \"id ams\""),
# read again for every query so a test changes DNS by rewriting the file. A
# name with no record at all is NXDOMAIN; a name with records of other types
# is an empty NOERROR answer, as a real server says.
#
#   fake_dns.pl PORT RECORDS_FILE
use strict;
use warnings;
use Net::DNS;
use Net::DNS::Nameserver;

$| = 1;
my ($port, $file) = @ARGV;
die "usage: $0 PORT RECORDS_FILE\n" unless defined $file;

sub records
{
	open my $fh, '<', $file or return ();
	my @rr;
	while (my $line = <$fh>)
	{
		next if $line =~ /^\s*(?:;|$)/;
		push @rr, Net::DNS::RR->new($line);
	}
	return @rr;
}

sub reply
{
	my ($qname, $qclass, $qtype) = @_;
	my @named = grep { lc($_->owner) eq lc($qname) } records();
	return ('NXDOMAIN', [], [], [], { aa => 1 }) unless @named;
	return ('NOERROR', [ grep { $_->type eq $qtype } @named ], [], [], { aa => 1 });
}

my $ns = Net::DNS::Nameserver->new(
	LocalAddr    => ['127.0.0.1'],
	LocalPort    => $port,
	ReplyHandler => \&reply,
	Verbose      => 0) or die "could not start the name server: $!\n";
print "listening on 127.0.0.1:$port\n";
$ns->main_loop;
