package origin_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/unfed/unfed/relay/cell"
	"github.com/unfed/unfed/relay/circuit"
	"github.com/unfed/unfed/relay/circuit/circuittest"
	"github.com/unfed/unfed/relay/onion"
	"github.com/unfed/unfed/relay/origin"
)

// BenchmarkBuild5 builds 5-hop circuits over in-memory links and reports the
// median and p99 build time.
func BenchmarkBuild5(b *testing.B) {
	for _, hybrid := range []bool{false, true} {
		b.Run(map[bool]string{false: "classical", true: "hybrid"}[hybrid], func(b *testing.B) {
			tn := newNet(b, 5, nil)
			m := origin.NewMux(tn.ClientLink(0, nil), nil)
			defer m.Close()
			ctx := context.Background()
			var ds []time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				c, err := m.Build(ctx, tn.hops(0, 1, 2, 3, 4), origin.Options{Hybrid: hybrid})
				if err != nil {
					b.Fatal(err)
				}
				ds = append(ds, time.Since(start))
				c.Destroy()
			}
			b.StopTimer()
			slices.Sort(ds)
			b.ReportMetric(float64(ds[len(ds)/2].Microseconds())/1000, "median-ms")
			b.ReportMetric(float64(ds[len(ds)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}

// BenchmarkRoundTrip sends a small message to the last hop of a 5-hop circuit
// and waits for its echo: the circuit overhead per generated token, with no
// compute.
func BenchmarkRoundTrip(b *testing.B) {
	for _, n := range []int{1, 5} {
		b.Run(fmt.Sprintf("hops=%d", n), func(b *testing.B) {
			tn := newNet(b, n, nil)
			ctx := context.Background()
			c, err := origin.Build(ctx, tn.ClientLink(0, nil), tn.hops(seq(n)...), origin.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Destroy()
			msg := make([]byte, 64)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := c.Send(ctx, n-1, msg); err != nil {
					b.Fatal(err)
				}
				if _, _, err := c.Recv(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkForwardThroughput streams 1 MiB messages to hop 2 of a 3-hop
// circuit (every byte crosses three layers and two relays).
func BenchmarkForwardThroughput(b *testing.B) {
	tn := newNet(b, 3, nil)
	done := make(chan struct{}, 1024)
	tn.h[2].onMsg = func(h *circuit.Hop, m circuit.Message) { done <- struct{}{} }
	ctx := context.Background()
	c, err := origin.Build(ctx, tn.ClientLink(0, nil), tn.hops(0, 1, 2), origin.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Destroy()
	msg := make([]byte, cell.MaxMessage)
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	go func() {
		for i := 0; i < b.N; i++ {
			c.Send(ctx, 2, msg)
		}
	}()
	for i := 0; i < b.N; i++ {
		<-done
	}
}

// BenchmarkIdleCircuits creates 1,000 one-hop circuits on one relay from raw
// CREATE cells (the client's state is allocated before the baseline) and
// reports the relay's heap per idle circuit; then it closes the link and
// checks every circuit is gone.
func BenchmarkIdleCircuits(b *testing.B) {
	const n = 1000
	for i := 0; i < b.N; i++ {
		nw := circuittest.NewNetwork(b, 1, nil)
		r := nw.Relays[0]
		creates := make([][]byte, n)
		for j := range creates {
			_, data, err := onion.NewClient(onion.Ntor, onion.RelayInfo{Identity: r.Identity.Public, OnionKey: r.Onion.Public}, nil)
			if err != nil {
				b.Fatal(err)
			}
			body, _ := cell.AppendHandshake(nil, cell.Handshake{Type: uint16(onion.Ntor), Data: data})
			creates[j], _ = cell.Encode(cell.Cell{CircID: 0x80000000 | uint32(j+1), Cmd: cell.CmdCreate, Payload: body})
		}
		client, relayEnd := circuittest.Pipe()
		r.Switch.Accept(relayEnd, true)
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for j, f := range creates {
			client.WriteFrame(f)
			reply, err := client.ReadFrame()
			if err != nil {
				b.Fatal(err)
			}
			if c, err := cell.Decode(reply); err != nil || c.Cmd != cell.CmdCreated {
				b.Fatalf("circuit %d not created", j)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if got := r.Switch.Circuits(); got != n {
			b.Fatalf("%d circuits, want %d", got, n)
		}
		b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/n, "heap-B/circuit")
		b.ReportMetric(float64(runtime.NumGoroutine()), "goroutines")
		client.Close()
		deadline := time.Now().Add(10 * time.Second)
		for r.Switch.Circuits() != 0 {
			if time.Now().After(deadline) {
				b.Fatal("circuits outlived their link")
			}
			time.Sleep(time.Millisecond)
		}
		runtime.KeepAlive(creates)
	}
}
