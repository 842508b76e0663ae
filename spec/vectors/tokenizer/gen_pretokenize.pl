#!/usr/bin/perl
# Generate pre-tokenizer test vectors with Perl's regex engine as the
# reference (spec/06-model-files.md §3.4). Inputs are fixed strings plus
# pseudo-random strings from a fixed seed over a mixed alphabet.
# usage: perl gen_pretokenize.pl > pretokenize.json
use strict;
use warnings;
use utf8;
use feature qw(unicode_strings);
use JSON::PP;

my %re = (
    gpt2   => qr/'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/,
    qwen2  => qr/(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+/,
    llama3 => qr/(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+/,
);

my @fixed = (
    "Hello world's 123 test!!  ok\n", "I'M don't you'll WE'RE", "a   b", "end   ", " .,;x",
    "x \n y", "a!!\n\nb", "\tword\r\n\r\n  z", "12345 678", "(hi) .x", "naïve café 日本語 🙂!",
    "  \n\t \n x", "'' 's 'S", "3.14e-10", "tab\there\u00a0nbsp\u2003em",
);
my @alphabet = split //, "aZ09 \t\n\r'.,!?-_sStTlLdDmMvVeE日本é🙂\x{00a0}\x{2003}\x{0663}";
my $seed = 12345;
sub rnd { $seed = ($seed * 1103515245 + 12345) % 2147483648; return $seed; }
my @inputs = @fixed;
for my $i (1 .. 60) {
    my $len = 1 + rnd() % 24;
    push @inputs, join "", map { $alphabet[rnd() % @alphabet] } 1 .. $len;
}
my $json = JSON::PP->new->canonical;
my @out;
for my $name (sort keys %re) {
    for my $in (@inputs) {
        my @parts;
        my $s = $in;
        push @parts, $1 while $s =~ /\G($re{$name})/gc;
        die "no full match for $name: [" . join("|", @parts) . "] in [$in]" if join("", @parts) ne $in;
        push @out, { pre => $name, text => $in, parts => \@parts };
    }
}
binmode STDOUT, ":encoding(UTF-8)";
print "[\n", join(",\n", map { $json->encode($_) } @out), "\n]\n";
