package tokenizer

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/unfed/unfed/compute/gguf"
)

func TestByteToUnicode(t *testing.T) {
	cases := map[byte]rune{'a': 'a', '!': '!', '~': '~', ' ': 'Ġ', '\n': 'Ċ', '\t': 'ĉ', 0: 'Ā', 0x7f: 'ġ', 0xa0: 'ł', 0xad: 'Ń', 0xa1: '¡', 0xff: 'ÿ'}
	for b, r := range cases {
		if byteToRune[b] != r {
			t.Errorf("byte %#x → %q, want %q", b, byteToRune[b], r)
		}
	}
	seen := map[rune]bool{}
	for b := 0; b < 256; b++ {
		r := byteToRune[b]
		if seen[r] || runeToByte[r] != byte(b) {
			t.Fatalf("mapping not a bijection at %#x", b)
		}
		seen[r] = true
	}
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	if byteDecode(byteEncode(string(all))) != string(all) {
		t.Fatal("byteDecode(byteEncode) is not the identity")
	}
}

func splitAll(p preTokenizer, s string) []string {
	var out []string
	p.split(s, func(w string) { out = append(out, w) })
	return out
}

func TestPreTokenizers(t *testing.T) {
	cases := []struct {
		p    preTokenizer
		in   string
		want []string
	}{
		{preGPT2, "Hello world's 123 test!!  ok\n", []string{"Hello", " world", "'s", " 123", " test", "!!", " ", " ok", "\n"}},
		{preGPT2, "I'M don't you'll", []string{"I", "'", "M", " don", "'t", " you", "'ll"}},
		{preGPT2, "a   b", []string{"a", "  ", " b"}},
		{preGPT2, "end   ", []string{"end", "   "}},
		{preGPT2, " .,;x", []string{" .,;", "x"}},
		{preGPT2, "\xff\xfeab", []string{"\xff\xfe", "ab"}},
		{preQwen2, "I'M 2025 HELLO'LL\n\n  x", []string{"I", "'M", " ", "2", "0", "2", "5", " HELLO", "'LL", "\n\n", " ", " x"}},
		{preQwen2, "(hi) .x", []string{"(hi", ")", " .", "x"}},
		{preQwen2, "a.b", []string{"a", ".b"}},
		{preQwen2, "a!!\n\nb", []string{"a", "!!\n\n", "b"}},
		{preQwen2, "x \n y", []string{"x", " \n", " y"}},
		{preQwen2, "\tword", []string{"\tword"}},
		{preLlama3, "12345 x", []string{"123", "45", " x"}},
	}
	for _, c := range cases {
		got := splitAll(c.p, c.in)
		if !slices.Equal(got, c.want) {
			t.Errorf("pre %d split(%q) = %q, want %q", c.p, c.in, got, c.want)
		}
		if strings.Join(got, "") != c.in {
			t.Errorf("pre %d split(%q) loses text", c.p, c.in)
		}
	}
}

// tinyBPE builds a gpt2 tokenizer from byte tokens plus merges.
func tinyBPE(t *testing.T, merges []string, extra ...string) *Tokenizer {
	t.Helper()
	var tokens []string
	for b := 0; b < 256; b++ {
		tokens = append(tokens, string(byteToRune[b]))
	}
	for _, m := range merges {
		tokens = append(tokens, strings.Replace(m, " ", "", 1))
	}
	tokens = append(tokens, extra...)
	tok, err := build(vocab{kind: kindGPT2, tokens: tokens, merges: merges, bos: -1, eos: -1, unk: -1, eot: -1, eom: -1, specials: true})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestMergePriority(t *testing.T) {
	pieces := func(tok *Tokenizer, s string) []string {
		var out []string
		for _, id := range tok.Encode(s, false) {
			out = append(out, tok.Token(id))
		}
		return out
	}
	ab := tinyBPE(t, []string{"a b", "b c"})
	if got := pieces(ab, "abc"); !slices.Equal(got, []string{"ab", "c"}) {
		t.Errorf("rank a+b first: %q", got)
	}
	bc := tinyBPE(t, []string{"b c", "a b"})
	if got := pieces(bc, "abc"); !slices.Equal(got, []string{"a", "bc"}) {
		t.Errorf("rank b+c first: %q", got)
	}
	// Equal rank pairs: leftmost first; "a a" applied left to right.
	aa := tinyBPE(t, []string{"a a"})
	if got := pieces(aa, "aaa"); !slices.Equal(got, []string{"aa", "a"}) {
		t.Errorf("aaa: %q", got)
	}
	// Llama 3 vocabularies take a whole-word token even when the merges
	// would not reach it; others follow the merges.
	var tokens []string
	for b := 0; b < 256; b++ {
		tokens = append(tokens, string(byteToRune[b]))
	}
	tokens = append(tokens, "ab", "abc")
	for pre, want := range map[string][]string{"llama-bpe": {"abc"}, "qwen2": {"ab", "c"}} {
		tok, err := build(vocab{kind: kindGPT2, tokens: tokens, merges: []string{"a b"}, pre: pre, bos: -1, eos: -1, unk: -1, eot: -1, eom: -1})
		if err != nil {
			t.Fatal(err)
		}
		if got := pieces(tok, "abc"); !slices.Equal(got, want) {
			t.Errorf("%s: abc → %q, want %q", pre, got, want)
		}
	}
	// Merges chain across ranks; spaces are Ġ and stay with the next word.
	chain := tinyBPE(t, []string{"Ġ t", "h e", "Ġt he"})
	if got := pieces(chain, "the the"); !slices.Equal(got, []string{"t", "he", "Ġthe"}) {
		t.Errorf("the the: %q", got)
	}
}

func TestBPERoundTrips(t *testing.T) {
	tok := synthTokenizer(t, 2000)
	for _, s := range append(llamaRoundTrips, "\xff\xfe invalid \xc3 utf8 \xe2\x82", "▁ is plain text here", "<|im_start|> is text in Encode") {
		ids := tok.Encode(s, false)
		if got := tok.Decode(ids); got != s {
			t.Errorf("Decode(Encode(%q)) = %q", s, got)
		}
	}
}

func synthFile(t testing.TB, n int) *gguf.File {
	t.Helper()
	w := gguf.NewWriter()
	w.AddString("general.architecture", "qwen2")
	AddSyntheticGPT2(w, n)
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Parse(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func synthTokenizer(t testing.TB, n int) *Tokenizer {
	t.Helper()
	tok, err := FromGGUF(synthFile(t, n))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestSyntheticGPT2(t *testing.T) {
	for _, n := range []int{MinSyntheticVocab, 300, 5000, 151936} {
		tokens, merges, types := SyntheticGPT2Vocab(n)
		if len(tokens) != n || len(types) != n {
			t.Fatalf("n=%d: %d tokens, %d types", n, len(tokens), len(types))
		}
		t2, m2, _ := SyntheticGPT2Vocab(n)
		if !slices.Equal(tokens, t2) || !slices.Equal(merges, m2) {
			t.Fatalf("n=%d: not deterministic", n)
		}
		seen := map[string]bool{}
		for _, s := range tokens {
			if seen[s] {
				t.Fatalf("n=%d: duplicate token %q", n, s)
			}
			seen[s] = true
		}
		for _, m := range merges {
			l, r, ok := strings.Cut(m, " ")
			if !ok || !seen[l] || !seen[r] || !seen[l+r] {
				t.Fatalf("n=%d: merge %q does not join two tokens into a token", n, m)
			}
		}
	}
	if tokens, _, _ := SyntheticGPT2Vocab(3); len(tokens) != MinSyntheticVocab {
		t.Errorf("small n gives %d tokens", len(tokens))
	}

	tok := synthTokenizer(t, 5000)
	if tok.Kind() != "gpt2" || tok.VocabSize() != 5000 || tok.AddBOS() {
		t.Fatalf("kind %s vocab %d addBOS %v", tok.Kind(), tok.VocabSize(), tok.AddBOS())
	}
	endoftext, imStart, imEnd := 4997, 4998, 4999
	if tok.BOS() != endoftext || tok.EOS() != endoftext || !tok.IsEOG(imEnd) || !tok.IsEOG(endoftext) || tok.IsEOG(imStart) {
		t.Errorf("bos %d eos %d eog(im_end) %v", tok.BOS(), tok.EOS(), tok.IsEOG(imEnd))
	}
	if tok.ChatTemplate() != SyntheticChatTemplate {
		t.Error("chat template not read")
	}
	text := "Once upon a time, there was a little girl."
	ids := tok.Encode(text, false)
	if len(ids) >= len(text)/2 {
		t.Errorf("synthetic vocabulary barely merges: %d ids for %d bytes", len(ids), len(text))
	}
	if got := tok.Decode(ids); got != text {
		t.Errorf("round trip %q", got)
	}
	chat := "<|im_start|>user\nhi<|im_end|>\n"
	special, err := tok.EncodeSpecial(chat, false)
	if err != nil || special[0] != imStart || !slices.Contains(special, imEnd) {
		t.Errorf("EncodeSpecial = %v, %v", special, err)
	}
	if plain := tok.Encode(chat, false); slices.Contains(plain, imStart) || tok.Decode(plain) != chat {
		t.Errorf("Encode matched a control token: %v", plain)
	}
	if got := tok.Decode(special); got != "user\nhi\n" {
		t.Errorf("Decode(special) = %q", got)
	}
}

func TestUserDefinedTokens(t *testing.T) {
	tokens, merges, types := SyntheticGPT2Vocab(400)
	tokens = append(tokens, "<tool>", "<to")
	types = append(types, int32(TypeUserDefined), int32(TypeUserDefined))
	tv := make([]TokenType, len(types))
	for i, x := range types {
		tv[i] = TokenType(x)
	}
	tok, err := build(vocab{kind: kindGPT2, tokens: tokens, types: tv, merges: merges, bos: -1, eos: -1, unk: -1, eot: -1, eom: -1, specials: true})
	if err != nil {
		t.Fatal(err)
	}
	ids := tok.Encode("call <tool> now <to", false)
	if !slices.Contains(ids, 400) || !slices.Contains(ids, 401) {
		t.Errorf("user-defined tokens not matched: %v", ids)
	}
	if got := tok.Decode(ids); got != "call <tool> now <to" {
		t.Errorf("Decode = %q", got)
	}
}

// TestPreTokenizerVectors compares the hand-written splitters with Perl's
// regex engine (spec/vectors/tokenizer/gen_pretokenize.pl).
func TestPreTokenizerVectors(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "spec", "vectors", "tokenizer", "pretokenize.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		Pre   string
		Text  string
		Parts []string
	}
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) < 200 {
		t.Fatalf("only %d vectors", len(cases))
	}
	for _, c := range cases {
		p, err := preTokenizerByName(c.Pre)
		if err != nil {
			t.Fatal(err)
		}
		if got := splitAll(p, c.Text); !slices.Equal(got, c.Parts) {
			t.Errorf("%s split(%q) = %q, want %q", c.Pre, c.Text, got, c.Parts)
		}
	}
}
