package client

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/unfed/unfed/compute/gguf"
	"github.com/unfed/unfed/compute/model"
	"github.com/unfed/unfed/compute/tokenizer"
)

// BenchmarkPrefillTTFT measures, in one process and interleaved, the time
// to the first streamed token of a long prompt through an anonymous circuit
// of this package's in-process network (guard and three compute hops on
// loopback, one thread each, commitments on) and the local prefill of the
// same tokens by one unsplit engine of one thread (issue 16).
// UNFED_BENCH_PROMPT_WORDS sets the prompt (default 100 words, about 128
// tokens). With -cpuprofile it shows where the overlay's time goes, client
// and relays together.
func BenchmarkPrefillTTFT(b *testing.B) {
	n := sharedNet(b)
	words, _ := strconv.Atoi(os.Getenv("UNFED_BENCH_PROMPT_WORDS"))
	if words <= 0 {
		words = 100
	}
	w := strings.Fields(strings.Repeat("Once upon a time there was a little girl named Lily. ", words/10+1))
	prompt := strings.Join(w[:words], " ")
	rc := startClient(b, n, b.TempDir(), func(c *Config) { c.Circuit.Mode = string(ModeAnonymous) })

	f, err := gguf.Open(n.modelPath)
	if err != nil {
		b.Fatal(err)
	}
	tok, err := tokenizer.FromGGUF(f)
	f.Close()
	if err != nil {
		b.Fatal(err)
	}
	ids := tok.Encode(prompt, tok.AddBOS())
	sh, err := model.Load(n.modelPath, model.ShardOptions{Threads: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer sh.Close()

	first := func() time.Duration {
		body, _ := json.Marshal(map[string]any{"model": n.modelID + ":anonymous", "prompt": prompt, "max_tokens": 2, "temperature": 0, "stream": true})
		start := time.Now()
		resp, err := http.Post("http://"+rc.api+"/v1/completions", "application/json", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		var at time.Duration
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			if data == "[DONE]" {
				break
			}
			if at == 0 && strings.Contains(data, `"text":"`) && !strings.Contains(data, `"text":""`) {
				at = time.Since(start)
			}
		}
		if at == 0 {
			b.Fatal("no token")
		}
		return at
	}
	local := func() time.Duration {
		ss, err := sh.NewSession(model.SessionOptions{})
		if err != nil {
			b.Fatal(err)
		}
		defer ss.Close()
		start := time.Now()
		if _, err := ss.ForwardTokens(ids, 0); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	pause, _ := time.ParseDuration(os.Getenv("UNFED_BENCH_PAUSE"))
	first() // the first request builds a circuit; later ones take the spare
	var overlay, loc time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// As a user's requests come: not back to back with the
		// previous one's spare circuit still being built.
		b.StopTimer()
		time.Sleep(pause)
		b.StartTimer()
		overlay += first()
		loc += local()
	}
	b.ReportMetric(float64(len(ids)), "tokens")
	b.ReportMetric(float64(overlay.Microseconds())/1000/float64(b.N), "ms-ttft")
	b.ReportMetric(float64(loc.Microseconds())/1000/float64(b.N), "ms-local-prefill")
}
