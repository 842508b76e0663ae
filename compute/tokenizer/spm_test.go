package tokenizer

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const storiesPrompt = "Once upon a time"
const storiesContinuation = ", there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball."

// TestSPMVectors checks the vectors made by spec/vectors/tokenizer/gen_spm.py,
// an independent transcription of llama2.c's encode.
func TestSPMVectors(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "spec", "vectors", "tokenizer", "spm.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Vocabularies []struct {
			Vocab string
			Cases []struct {
				Text string
				BOS  bool
				IDs  []int
			}
		}
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Vocabularies) != 3 {
		t.Fatalf("%d vocabularies in spm.json", len(doc.Vocabularies))
	}
	for _, v := range doc.Vocabularies {
		var tok *Tokenizer
		if v.Vocab == "tok512.bin" {
			tok = llama2cTokenizer(t)
		} else {
			tok = ggufTokenizer(t, v.Vocab)
		}
		for _, c := range v.Cases {
			got := tok.Encode(c.Text, c.BOS)
			if !slices.Equal(got, c.IDs) {
				t.Errorf("%s: Encode(%q, %v) = %v, want %v", v.Vocab, c.Text, c.BOS, got, c.IDs)
			}
			if dec := tok.Decode(got); dec != c.Text {
				t.Errorf("%s: Decode(Encode(%q)) = %q", v.Vocab, c.Text, dec)
			}
		}
	}
}

func TestStoriesReference(t *testing.T) {
	g := ggufTokenizer(t, "stories260K.gguf")
	b := llama2cTokenizer(t)
	want := []int{1, 403, 407, 261, 378} // <s> ▁Once ▁upon ▁a ▁time
	for name, tok := range map[string]*Tokenizer{"gguf": g, "llama2c": b} {
		if got := tok.Encode(storiesPrompt, true); !slices.Equal(got, want) {
			t.Errorf("%s: Encode = %v, want %v", name, got, want)
		}
		if tok.BOS() != 1 || tok.EOS() != 2 || tok.VocabSize() != 512 || tok.Kind() != "llama" || !tok.AddBOS() {
			t.Errorf("%s: bos %d eos %d vocab %d kind %s", name, tok.BOS(), tok.EOS(), tok.VocabSize(), tok.Kind())
		}
		if !tok.IsEOG(2) || tok.IsEOG(1) || tok.IsEOG(403) {
			t.Errorf("%s: IsEOG wrong", name)
		}
		// Streamed as llama2.c prints a generation: BOS, prompt, continuation.
		ids := tok.Encode(storiesPrompt+storiesContinuation, true)
		d := tok.NewStreamDecoder()
		var sb strings.Builder
		for _, id := range ids {
			sb.WriteString(d.Next(id))
		}
		sb.WriteString(d.Flush())
		if sb.String() != storiesPrompt+storiesContinuation {
			t.Errorf("%s: streamed %q", name, sb.String())
		}
		// A continuation decoded on its own keeps its leading spaces.
		prompt := tok.Encode(storiesPrompt, true)
		cont := ids[len(prompt):]
		d = tok.NewStreamDecoder()
		sb.Reset()
		for _, id := range cont {
			sb.WriteString(d.Next(id))
		}
		if sb.String() != storiesContinuation {
			t.Errorf("%s: continuation %q", name, sb.String())
		}
	}
	if g.Token(403) != "▁Once" || b.Token(403) != " Once" {
		t.Errorf("token 403: %q / %q", g.Token(403), b.Token(403))
	}
}

var llamaRoundTrips = []string{
	"", "Hello world", "hello, World!", "   ", " a", "a ", "a  b   c    d",
	"line one\nline two\n\n\nthree", "\ttab\t\ttabs", "\r\n", "mixed \t\n \t whitespace",
	"中文字符测试", "日本語とカタカナ", "한국어", "emoji 🙂🚀 and family 👨‍👩‍👧", "Ünïcödé àçcénts",
	"math ∑∫√ and symbols ©®™", "<s> not a control token </s>", "<0x41> stays text",
	"very long word: pneumonoultramicroscopicsilicovolcanoconiosis", "12345 67.89 -0.5e10",
}

func TestLlama2VocabRoundTrips(t *testing.T) {
	tok := ggufTokenizer(t, "llama-2-tiny-random.gguf")
	if tok.VocabSize() != 32000 {
		t.Fatalf("vocab %d", tok.VocabSize())
	}
	for _, s := range llamaRoundTrips {
		for _, bos := range []bool{true, false} {
			ids := tok.Encode(s, bos)
			if got := tok.Decode(ids); got != s {
				t.Errorf("Decode(Encode(%q, %v)) = %q (ids %v)", s, bos, got, ids)
			}
			for _, id := range ids {
				if id == 0 || (id <= 2 && !(bos && id == 1)) {
					t.Errorf("Encode(%q) produced special id %d: %v", s, id, ids)
				}
			}
		}
	}
}

func TestLlama2KnownTokenizations(t *testing.T) {
	tok := ggufTokenizer(t, "llama-2-tiny-random.gguf")
	pieces := func(ids []int) []string {
		var out []string
		for _, id := range ids {
			out = append(out, tok.Token(id))
		}
		return out
	}
	cases := []struct {
		text string
		want []string
	}{
		{"Hello world", []string{"▁Hello", "▁world"}},
		{"Once upon a time", []string{"▁Once", "▁upon", "▁a", "▁time"}},
		// newline has no piece of its own: the dummy prefix stays alone and
		// the newline falls back to its byte token
		{"\n", []string{"▁", "<0x0A>"}},
		// an emoji outside the vocabulary falls back to its four UTF-8 bytes
		{"🙂", []string{"▁", "<0xF0>", "<0x9F>", "<0x99>", "<0x82>"}},
		{"<s>", []string{"▁<", "s", ">"}},
	}
	for _, c := range cases {
		if got := pieces(tok.Encode(c.text, false)); !slices.Equal(got, c.want) {
			t.Errorf("Encode(%q) = %q, want %q", c.text, got, c.want)
		}
	}
	if ids := tok.Encode("Hello world", true); !slices.Equal(ids, []int{1, 15043, 3186}) {
		t.Errorf("Encode(Hello world) = %v", ids)
	}
	// EncodeSpecial turns control token text into the token.
	ids, err := tok.EncodeSpecial("<s>Hi</s>", false)
	if err != nil || len(ids) < 3 || ids[0] != 1 || ids[len(ids)-1] != 2 {
		t.Errorf("EncodeSpecial = %v, %v", ids, err)
	}
	if got := tok.Decode(ids); got != "Hi" {
		t.Errorf("Decode drops control tokens: got %q", got)
	}
}

func TestDecodeDetails(t *testing.T) {
	tok := ggufTokenizer(t, "llama-2-tiny-random.gguf")
	if got := tok.Decode([]int{1, -5, 15043, 99999, 2, 3186}); got != "Hello world" {
		t.Errorf("Decode with BOS/EOS/out-of-range = %q", got)
	}
	if got := tok.Decode([]int{0}); got != unknownPiece {
		t.Errorf("unknown decodes to %q", got)
	}
	// Streaming: an emoji split over byte tokens comes out whole.
	ids := tok.Encode("a🙂b", true)
	d := tok.NewStreamDecoder()
	var parts []string
	for _, id := range ids {
		parts = append(parts, d.Next(id))
	}
	parts = append(parts, d.Flush())
	joined := strings.Join(parts, "")
	if joined != "a🙂b" {
		t.Fatalf("stream = %q", parts)
	}
	if !slices.Contains(parts, "🙂") && !slices.Contains(parts, " 🙂") {
		t.Errorf("emoji not emitted whole: %q", parts)
	}
	for _, p := range parts {
		if !isValidUTF8(p) {
			t.Errorf("stream emitted incomplete UTF-8 %q", p)
		}
	}
	// An incomplete character at the end comes out of Flush.
	d = tok.NewStreamDecoder()
	if out := d.Next(243) + d.Next(162); out != "" { // <0xF0> <0x9F>
		t.Errorf("incomplete character emitted early: %q", out)
	}
	if out := d.Flush(); out != "\xf0\x9f" {
		t.Errorf("Flush = %q", out)
	}
	// A byte that can never start a character is emitted at once.
	d = tok.NewStreamDecoder()
	if out := d.Next(0x80 + 3); out != "\x80" {
		t.Errorf("stray continuation byte: %q", out)
	}
}

func isValidUTF8(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

func TestEncodeLimits(t *testing.T) {
	tok := llama2cTokenizer(t)
	big := strings.Repeat("é", MaxInputBytes/2) + "x" // MaxInputBytes+1 bytes, ends mid-boundary
	if _, err := tok.EncodeChecked(big, true); !errors.Is(err, ErrInputTooLarge) {
		t.Fatalf("EncodeChecked over limit: %v", err)
	}
	if _, err := tok.EncodeSpecial(big, true); !errors.Is(err, ErrInputTooLarge) {
		t.Fatalf("EncodeSpecial over limit: %v", err)
	}
	odd := "x" + strings.Repeat("é", MaxInputBytes/2) // the limit falls inside an é
	got := tok.Decode(tok.Encode(odd, true))
	if len(got) != MaxInputBytes-1 || !isValidUTF8(got) || !strings.HasPrefix(odd, got) {
		t.Fatalf("truncated to %d bytes, valid %v", len(got), isValidUTF8(got))
	}
	if ids, err := tok.EncodeChecked("", true); err != nil || !slices.Equal(ids, []int{1}) {
		t.Errorf("empty with BOS = %v, %v", ids, err)
	}
	if ids := tok.Encode("", false); len(ids) != 0 {
		t.Errorf("empty = %v", ids)
	}
}
