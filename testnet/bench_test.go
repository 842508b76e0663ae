package testnet

import (
	"context"
	"io"
	"os"
	"testing"
	"time"

	"github.com/unfed/unfed/compute/modeltest"
)

// firstWrite records when the first streamed text arrives.
type firstWrite struct {
	start, first time.Time
}

func (f *firstWrite) Write(p []byte) (int, error) {
	if f.first.IsZero() {
		f.first = time.Now()
	}
	return len(p), nil
}

// BenchmarkOverlayGreedy measures, through a testnet of real processes (MPC
// entry, 2 shards), the time to first token and the per-token time of a
// streamed greedy completion of 32 tokens. Compare with BenchmarkLocal*
// in compute/model (docs/PERFORMANCE.md).
func BenchmarkOverlayGreedy(b *testing.B) {
	n := startNetworkB(b)
	api, _, _ := n.ClientAddrs()
	ctx := context.Background()
	const tokens = 32
	var ttft, total time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		fw := &firstWrite{start: time.Now()}
		if _, err := StreamCompletion(ctx, api, CompletionRequest{Prompt: e2ePrompt, MaxTokens: tokens}, fw); err != nil {
			b.Fatal(err)
		}
		total += time.Since(fw.start)
		ttft += fw.first.Sub(fw.start)
	}
	b.ReportMetric(float64(ttft.Milliseconds())/float64(b.N), "ms-ttft")
	b.ReportMetric(float64((total-ttft).Microseconds())/float64(b.N*(tokens-1))/1000, "ms/token")
}

func startNetworkB(b *testing.B) *Network {
	b.Helper()
	dir, err := os.MkdirTemp("", "unfed-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	model := modeltest.Path(b, "stories260K.gguf")
	n, err := Generate(Spec{Dir: dir, BinDir: binDir, Model: model, Client: true, Interval: 3 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := n.StopAll(15 * time.Second); err != nil {
			b.Error(err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := n.Start(ctx, false, io.Discard); err != nil {
		b.Fatal(err)
	}
	return n
}
