#!/usr/bin/perl
# A form POST and a file upload through Perl's CGI.pm (libcgi-pm-perl).
use strict;
use warnings;
use CGI;
use Digest::SHA qw(sha256_hex);

my $q = CGI->new;
print $q->header(-type => 'text/plain', -charset => 'utf-8');
if ($q->request_method eq 'POST') {
    my $name = $q->param('name') // '';
    print "name=$name\n";
    my $fh = $q->upload('file');
    if (defined $fh) {
        local $/;
        binmode $fh;
        my $data = <$fh>;
        my $filename = $q->param('file');
        printf "file=%s size=%d sha256=%s\n", "$filename", length($data), sha256_hex($data);
    }
} else {
    print "method=", $q->request_method, "\n";
    print "query name=", ($q->url_param('name') // ''), "\n";
}
