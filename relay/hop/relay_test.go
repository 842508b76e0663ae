package hop_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/unfed/unfed/compute/model"
	"github.com/unfed/unfed/relay/cell"
	"github.com/unfed/unfed/relay/circuit"
	"github.com/unfed/unfed/relay/circuit/circuittest"
	"github.com/unfed/unfed/relay/hop"
	"github.com/unfed/unfed/relay/origin"
)

// The compute protocol over real circuits: in-process relays with real keys
// and circuit switches joined by pipes (relay/circuit/circuittest), a real
// client circuit (relay/origin), onion layers, cells and edge cells.

// relayNet starts a guard (relay 0, no handler) and one relay per service,
// builds a circuit through all of them and returns a client for it. Every
// frame the guard reads is recorded: from the client, and from its next hop
// once circuittest's dialer returns the wrapped end (today it returns the
// unwrapped one to the dialing relay, so only the client side is seen).
func relayNet(t testing.TB, svcs []*hop.Service) (*client, func() [][]byte) {
	t.Helper()
	var mu sync.Mutex // guards taps: links are wrapped on the switches' goroutines
	taps := map[string]*circuittest.Tap{}
	nw := circuittest.NewNetwork(t, len(svcs)+1, func(i int, c *circuit.Config) {
		if i > 0 {
			c.Handler = svcs[i-1].CircuitHandler()
		}
	})
	nw.WrapRelayLink = func(reader, peer int, l circuit.Link) circuit.Link {
		if reader != 0 {
			return l
		}
		tp := circuittest.NewTap(l)
		mu.Lock()
		taps[fmt.Sprintf("relay-%d", peer)] = tp
		mu.Unlock()
		return tp
	}
	link := nw.ClientLink(0, func(l circuit.Link) circuit.Link {
		tp := circuittest.NewTap(l)
		mu.Lock()
		taps["client"] = tp
		mu.Unlock()
		return tp
	})
	var hs []origin.HopInfo
	for i, r := range nw.Relays {
		hs = append(hs, origin.HopInfo{IdentityKey: r.Identity.Public, OnionKey: r.Onion.Public, XWingKey: r.Onion.XWingPublic,
			LinkSpecs: []cell.LinkSpec{{Transport: "pipe", Addr: fmt.Sprintf("relay-%d", i)}}})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	circ, err := origin.Build(ctx, link, hs, origin.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(circ.Destroy)
	c := &client{t: t, offset: 1,
		sendFn: func(pos int, msg []byte) error {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			return circ.Send(ctx, pos, msg)
		},
		recvFn: circ.Recv,
	}
	guardView := func() [][]byte {
		mu.Lock()
		defer mu.Unlock()
		var all [][]byte
		for _, tp := range taps {
			all = append(all, tp.Frames()...)
		}
		return all
	}
	return c, guardView
}

// rowWindows returns the first 16 bytes of every row of vs (dim wide) in
// little-endian f32, the encoding activations and dense logits use.
func rowWindows(vs []float32, dim int) [][]byte {
	var out [][]byte
	for r := 0; r+dim <= len(vs); r += dim {
		var w []byte
		for _, v := range vs[r : r+4] {
			w = binary.LittleEndian.AppendUint32(w, math.Float32bits(v))
		}
		out = append(out, w)
	}
	return out
}

// TestRelayGreedyMatchesLocal: guard → S1 [0,3) → S2 [3,5) over real
// circuit switches generates what the unsplit engine generates, and the guard
// never reads the activations or the logits.
func TestRelayGreedyMatchesLocal(t *testing.T) {
	ids := prompt(t)
	want, wantFirst := localGreedy(t, ids, genTokens)
	shards := []*model.Shard{loadShard(t, 0, 3, model.Limits{}), loadShard(t, 3, 5, model.Limits{})}
	svcs := []*hop.Service{newService(t, shards[0], nil), newService(t, shards[1], nil)}
	c, guardView := relayNet(t, svcs)
	c.setupAll(plainSetups(t, shards, hop.F32, 0))
	lg := c.logits(0, ids)
	first := lg
	var got []int
	for range genTokens {
		next := greedy(lg)
		got = append(got, next)
		lg = c.logits(len(ids)+len(got)-1, []int{next})
	}
	if !slices.Equal(got, want) {
		t.Fatalf("relays generated %v\nlocal generated %v", got, want)
	}
	if !slices.Equal(first.Dense, wantFirst) {
		t.Fatal("first logits differ from the unsplit engine's")
	}

	// What the guard read must not contain the prompt's activations after
	// S1 or the logits, in the encoding they travel in.
	ref, err := shards[0].NewSession(model.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	acts, err := ref.ForwardTokens(ids, 0)
	ref.Close()
	if err != nil {
		t.Fatal(err)
	}
	secrets := append(rowWindows(acts, 64), rowWindows(wantFirst, len(wantFirst))...)
	frames := guardView()
	if len(frames) < genTokens {
		t.Fatalf("the guard read only %d frames", len(frames))
	}
	for _, f := range frames {
		for _, s := range secrets {
			if bytes.Contains(f, s) {
				t.Fatal("the guard read activation or logit bytes in the clear")
			}
		}
	}
}
