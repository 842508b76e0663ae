package tokenizer

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/unfed/unfed/compute/gguf"
)

var fuzzSeeds = []string{"", "Once upon a time", "  a\tb\n\nc", "日本語 🙂", "\xff\xfe\xc3", "Tom's 123 <s></s>", "<|im_start|>x<|im_end|>"}

// checkRoundTrip asserts Decode(Encode(s)) == s and that streaming gives the
// same bytes as Decode, with every streamed piece valid or uncompletable.
func checkRoundTrip(t *testing.T, tok *Tokenizer, s string) {
	ids := tok.Encode(s, true)
	for _, id := range ids {
		if id < 0 || id >= tok.VocabSize() {
			t.Fatalf("id %d out of range", id)
		}
	}
	if got := tok.Decode(ids); got != s {
		t.Fatalf("Decode(Encode(%q)) = %q", s, got)
	}
	d := tok.NewStreamDecoder()
	var sb strings.Builder
	for _, id := range ids {
		sb.WriteString(d.Next(id))
	}
	sb.WriteString(d.Flush())
	if sb.String() != s {
		t.Fatalf("stream(%q) = %q", s, sb.String())
	}
}

func FuzzEncodeDecodeSPM(f *testing.F) {
	tok := llama2cTokenizer(f)
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 4096 {
			return
		}
		checkRoundTrip(t, tok, s)
	})
}

func FuzzEncodeDecodeGPT2(f *testing.F) {
	tok := synthTokenizer(f, 1000)
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 4096 {
			return
		}
		checkRoundTrip(t, tok, s)
		if ids, err := tok.EncodeSpecial(s, false); err != nil || (utf8.ValidString(s) && !strings.Contains(s, "<|") && tok.Decode(ids) != s) {
			t.Fatalf("EncodeSpecial(%q) = %v, %v", s, ids, err)
		}
	})
}

func FuzzFromLlama2C(f *testing.F) {
	good := llama2cImage(4, []string{"<unk>"[:4], "<s>", "</s>", "<0x41>"[:4], "a", "b", "ab", " "}, []float32{0, 0, 0, 0, -1, -2, 5, 1})
	f.Add(good, 8)
	f.Add(good[:10], 8)
	f.Add(llama2cImage(6, []string{"<0x41>", "<s>", "x"}, []float32{1, 2, 3}), 3)
	f.Fuzz(func(t *testing.T, img []byte, n int) {
		if n > 1<<12 {
			n = 1 << 12
		}
		tok, err := FromLlama2C(bytes.NewReader(img), n)
		if err != nil {
			return
		}
		for _, s := range []string{"", "ab a", "x\xff"} {
			ids := tok.Encode(s, true)
			_ = tok.Decode(ids)
		}
	})
}

// FuzzFromGGUF feeds hostile tokenizer metadata through gguf.Parse and
// FromGGUF; whatever loads must encode and decode without panicking.
func FuzzFromGGUF(f *testing.F) {
	var buf bytes.Buffer
	w := gguf.NewWriter()
	AddSyntheticGPT2(w, 300)
	if _, err := w.WriteTo(&buf); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	buf.Reset()
	w = gguf.NewWriter()
	w.AddString(KeyModel, "llama")
	w.AddStringArray(KeyTokens, []string{"<unk>", "<s>", "</s>", "<0x41>", "▁a", "a", "▁", "<u>"})
	w.AddFloat32Array(KeyScores, []float32{0, 0, 0, 0, 2, 1, 1, 0})
	w.AddInt32Array(KeyTokenType, []int32{2, 3, 3, 6, 1, 1, 1, 4})
	if _, err := w.WriteTo(&buf); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, img []byte) {
		g, err := gguf.Parse(img)
		if err != nil {
			return
		}
		tok, err := FromGGUF(g)
		if err != nil {
			return
		}
		for _, s := range []string{"", "a A<u> b", "<s>\xff"} {
			ids := tok.Encode(s, true)
			_ = tok.Decode(ids)
			if sp, err := tok.EncodeSpecial(s, false); err == nil {
				_ = tok.Decode(sp)
			}
		}
	})
}
