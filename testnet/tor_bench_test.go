package testnet

import (
	"context"
	"io"
	"os"
	"testing"
	"time"

	"github.com/unfed/unfed/compute/modeltest"
)

// BenchmarkTorFirstHop measures what Tor on the client's first hop costs:
// the private Tor network's start-up, then the time to first token and the
// per-token time of a streamed greedy completion of 32 tokens in an
// anonymous circuit (guard → 2 shards of stories260K), from a client that
// reaches its guard through the private Tor network and from one that
// dials it directly, alternating, on the same UNFED network. Every Tor hop
// is on this machine, so the figure is Tor's processing and the three
// extra hops' scheduling, not wide-area latency (docs/PERFORMANCE.md).
func BenchmarkTorFirstHop(b *testing.B) {
	dir, err := os.MkdirTemp("", "unfed-torbench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	n, err := Generate(Spec{Dir: dir, BinDir: binDir, Model: modeltest.Path(b, "stories260K.gguf"), Client: true, Tor: true,
		Mode: "anonymous", Guards: 1, Shards: 2, Replicas: 1, Stages: 1, Parties: 2, Dealers: 1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := n.StopAll(15 * time.Second); err != nil {
			b.Error(err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	if err := n.Start(ctx, false, io.Discard); err != nil {
		b.Fatal(err)
	}
	started := time.Since(start)
	torAPI, _, _ := n.ClientAddrs()
	direct := startDirectClient(b, n, n.Node("client"))
	directAPI := "http://" + direct.Listener("api")
	const tokens = 32
	clients := []struct{ name, api string }{{"tor", torAPI}, {"direct", directAPI}}
	ttft := make([]time.Duration, 2)
	total := make([]time.Duration, 2)
	// One warm-up each: the first request builds the circuit and the link.
	for _, c := range clients {
		if _, err := StreamCompletion(ctx, c.api, CompletionRequest{Prompt: e2ePrompt, MaxTokens: tokens}, io.Discard); err != nil {
			b.Fatalf("%s: %v", c.name, err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j, c := range clients {
			fw := &firstWrite{start: time.Now()}
			if _, err := StreamCompletion(ctx, c.api, CompletionRequest{Prompt: e2ePrompt, MaxTokens: tokens}, fw); err != nil {
				b.Fatalf("%s: %v", c.name, err)
			}
			total[j] += time.Since(fw.start)
			ttft[j] += fw.first.Sub(fw.start)
		}
	}
	// After the loop: ResetTimer drops metrics reported before it.
	b.ReportMetric(n.Tor.StartTime.Seconds(), "s-tor-start")
	b.ReportMetric((started - n.Tor.StartTime).Seconds(), "s-unfed-start")
	for j, c := range clients {
		b.ReportMetric(float64(ttft[j].Microseconds())/float64(b.N)/1000, "ms-ttft-"+c.name)
		b.ReportMetric(float64((total[j]-ttft[j]).Microseconds())/float64(b.N*(tokens-1))/1000, "ms/token-"+c.name)
	}
}
