package tokenizer

import (
	"bytes"
	"encoding/binary"
	"math"
	"strings"
	"testing"

	"github.com/unfed/unfed/compute/gguf"
)

// llama2cImage builds a tokenizer.bin image.
func llama2cImage(maxLen int32, tokens []string, scores []float32) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(maxLen))
	for i, s := range tokens {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(scores[i]))
		b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	return b
}

func TestFromLlama2CErrors(t *testing.T) {
	good := llama2cImage(4, []string{"<unk>"[:4], "<s>", "</s>", "a", "b", "ab"}, []float32{0, 0, 0, -1, -2, 5})
	if _, err := FromLlama2C(bytes.NewReader(good), 6); err != nil {
		t.Fatalf("valid image: %v", err)
	}
	cases := []struct {
		name string
		img  []byte
		n    int
		want string
	}{
		{"vocab 0", good, 0, "vocabulary size"},
		{"vocab huge", good, MaxVocab + 1, "vocabulary size"},
		{"no header", nil, 6, "header"},
		{"max len 0", llama2cImage(0, nil, nil), 1, "max_token_len"},
		{"max len huge", llama2cImage(1<<30, nil, nil), 1, "max_token_len"},
		{"too long token", llama2cImage(2, []string{"abc"}, []float32{0}), 1, "length 3"},
		{"negative length", append(binary.LittleEndian.AppendUint32(nil, 4), 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff), 1, "length -1"},
		{"truncated", good[:len(good)-1], 6, "unexpected EOF"},
		{"short vocab", good, 7, "token 6"},
		{"nan score", llama2cImage(4, []string{"a"}, []float32{float32(math.NaN())}), 1, "NaN"},
	}
	for _, c := range cases {
		_, err := FromLlama2C(bytes.NewReader(c.img), c.n)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	// Merging works on a hand-made vocabulary: "ab" beats the bytes.
	tok, _ := FromLlama2C(bytes.NewReader(good), 6)
	if got := tok.Encode("ab", false); len(got) != 2 || tok.Token(got[1]) != "ab" {
		t.Errorf("Encode(ab) = %v", got)
	}
}

func ggufImage(t *testing.T, add func(w *gguf.Writer)) *gguf.File {
	t.Helper()
	w := gguf.NewWriter()
	add(w)
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

func TestFromGGUFErrors(t *testing.T) {
	spm := func(extra func(w *gguf.Writer)) func(w *gguf.Writer) {
		return func(w *gguf.Writer) {
			w.AddString(KeyModel, "llama")
			w.AddStringArray(KeyTokens, []string{"<unk>", "<s>", "</s>", "▁a"})
			extra(w)
		}
	}
	cases := []struct {
		name string
		add  func(w *gguf.Writer)
		want string
	}{
		{"no model", func(w *gguf.Writer) {}, "missing key"},
		{"bad model", func(w *gguf.Writer) { w.AddString(KeyModel, "rwkv") }, "unsupported tokenizer model"},
		{"no tokens", func(w *gguf.Writer) { w.AddString(KeyModel, "llama") }, "missing tokenizer.ggml.tokens"},
		{"scores", spm(func(w *gguf.Writer) { w.AddFloat32Array(KeyScores, []float32{1}) }), "1 scores for 4 tokens"},
		{"types", spm(func(w *gguf.Writer) { w.AddInt32Array(KeyTokenType, []int32{1, 1, 1, 9}) }), "unknown type 9"},
		{"byte type", spm(func(w *gguf.Writer) { w.AddInt32Array(KeyTokenType, []int32{2, 3, 3, 6}) }), "byte token 3"},
		{"bos type", spm(func(w *gguf.Writer) { w.AddString(KeyBOS, "1") }), "want an integer"},
		{"add_bos type", spm(func(w *gguf.Writer) { w.AddUint32(KeyAddBOS, 1) }), "want bool"},
		{"long token", func(w *gguf.Writer) {
			w.AddString(KeyModel, "llama")
			w.AddStringArray(KeyTokens, []string{strings.Repeat("x", MaxTokenBytes+1)})
		}, "token 0 is 1025 bytes"},
		{"gpt2 no merges", func(w *gguf.Writer) {
			w.AddString(KeyModel, "gpt2")
			w.AddStringArray(KeyTokens, []string{"a"})
		}, "missing tokenizer.ggml.merges"},
		{"gpt2 bad merge", func(w *gguf.Writer) {
			w.AddString(KeyModel, "gpt2")
			w.AddStringArray(KeyTokens, []string{"a"})
			w.AddStringArray(KeyMerges, []string{"ab"})
		}, "not \"left right\""},
		{"gpt2 bad pre", func(w *gguf.Writer) {
			w.AddString(KeyModel, "gpt2")
			w.AddStringArray(KeyTokens, []string{"a"})
			w.AddStringArray(KeyMerges, nil)
			w.AddString(KeyPre, "mystery")
		}, "unsupported pre-tokenizer"},
	}
	for _, c := range cases {
		_, err := FromGGUF(ggufImage(t, c.add))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	// Ids outside the vocabulary (0xFFFFFFFF means none) are dropped, and
	// metadata flags are honoured.
	tok, err := FromGGUF(ggufImage(t, spm(func(w *gguf.Writer) {
		w.AddUint32(KeyEOS, 0xFFFFFFFF)
		w.AddUint32(KeyEOT, 3)
		w.AddBool(KeyAddBOS, false)
		w.AddBool(KeyAddSpacePrefix, false)
	})))
	if err != nil {
		t.Fatal(err)
	}
	if tok.EOS() != -1 || tok.BOS() != 1 || tok.AddBOS() || !tok.IsEOG(3) {
		t.Errorf("eos %d bos %d addBOS %v", tok.EOS(), tok.BOS(), tok.AddBOS())
	}
	if got := tok.Encode("a", false); len(got) != 1 || got[0] == 3 {
		t.Errorf("without space prefix, \"a\" must not become ▁a: %v", got)
	}
}
