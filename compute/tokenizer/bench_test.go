package tokenizer

import (
	"fmt"
	"strings"
	"testing"
)

// benchText returns n bytes of English prose.
func benchText(n int) string {
	var b strings.Builder
	for b.Len() < n {
		b.WriteString(storiesPrompt + storiesContinuation + " ")
	}
	return b.String()[:n]
}

func benchEncode(b *testing.B, tok *Tokenizer, text string) {
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	var n int
	for b.Loop() {
		n = len(tok.Encode(text, true))
	}
	b.ReportMetric(float64(n), "tokens")
}

func BenchmarkEncode(b *testing.B) {
	llama := ggufTokenizer(b, "llama-2-tiny-random.gguf")
	stories := ggufTokenizer(b, "stories260K.gguf")
	qwen := synthTokenizer(b, 151936)
	inputs := map[string]string{
		"prose":   benchText(4096),
		"noSpace": strings.Repeat("ab", 2048),           // one 4 KiB word: worst case for merging
		"cjk":     strings.Repeat("語", 4096/3+1)[:4095], // byte fallback
	}
	for _, size := range []int{4096, 65536} {
		for name, tok := range map[string]*Tokenizer{"llama2-32k": llama, "stories-512": stories, "qwen-synth-152k": qwen} {
			for _, in := range []string{"prose", "noSpace"} {
				text := inputs[in]
				if size != 4096 {
					text = strings.Repeat(text, size/4096)
				}
				b.Run(fmt.Sprintf("%s/%s/%dB", name, in, size), func(b *testing.B) { benchEncode(b, tok, text) })
			}
		}
	}
	b.Run("llama2-32k/cjk/4096B", func(b *testing.B) { benchEncode(b, llama, inputs["cjk"]) })
}

func BenchmarkDecode(b *testing.B) {
	tok := ggufTokenizer(b, "llama-2-tiny-random.gguf")
	ids := tok.Encode(benchText(4096), true)
	b.ReportAllocs()
	for b.Loop() {
		_ = tok.Decode(ids)
	}
}

func BenchmarkStreamDecode(b *testing.B) {
	tok := ggufTokenizer(b, "llama-2-tiny-random.gguf")
	ids := tok.Encode(benchText(4096), true)
	b.ReportAllocs()
	for b.Loop() {
		d := tok.NewStreamDecoder()
		for _, id := range ids {
			_ = d.Next(id)
		}
	}
}

func BenchmarkLoad(b *testing.B) {
	b.Run("llama2-32k", func(b *testing.B) {
		for b.Loop() {
			_ = ggufTokenizer(b, "llama-2-tiny-random.gguf")
		}
	})
	b.Run("qwen-synth-152k", func(b *testing.B) {
		f := synthFile(b, 151936)
		b.ResetTimer()
		for b.Loop() {
			if _, err := FromGGUF(f); err != nil {
				b.Fatal(err)
			}
		}
	})
}
