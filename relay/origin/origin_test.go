package origin_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/unfed/unfed/relay/cell"
	"github.com/unfed/unfed/relay/circuit"
	"github.com/unfed/unfed/relay/circuit/circuittest"
	"github.com/unfed/unfed/relay/origin"
)

// handler echoes every relay message back to the client, prefixed with its
// relay index, unless onMsg is set; it records what it saw.
type handler struct {
	relay  int
	onMsg  func(h *circuit.Hop, m circuit.Message)
	mu     sync.Mutex
	got    []circuit.Message
	closed int
}

func (t *handler) Handle(h *circuit.Hop, m circuit.Message) {
	t.mu.Lock()
	t.got = append(t.got, m)
	f := t.onMsg
	t.mu.Unlock()
	if f != nil {
		f(h, m)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h.Send(ctx, append([]byte(fmt.Sprintf("r%d:", t.relay)), m.Data...))
}

func (t *handler) Closed(h *circuit.Hop) {
	t.mu.Lock()
	t.closed++
	t.mu.Unlock()
}

func (t *handler) messages() []circuit.Message {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]circuit.Message(nil), t.got...)
}

type testNet struct {
	*circuittest.Network
	h []*handler
}

func newNet(t testing.TB, n int, configure func(i int, c *circuit.Config)) *testNet {
	tn := &testNet{}
	for i := range n {
		tn.h = append(tn.h, &handler{relay: i})
	}
	tn.Network = circuittest.NewNetwork(t, n, func(i int, c *circuit.Config) {
		c.Handler = tn.h[i]
		if configure != nil {
			configure(i, c)
		}
	})
	return tn
}

func (tn *testNet) hops(idx ...int) []origin.HopInfo {
	var hs []origin.HopInfo
	for _, i := range idx {
		r := tn.Relays[i]
		hs = append(hs, origin.HopInfo{IdentityKey: r.Identity.Public, OnionKey: r.Onion.Public, XWingKey: r.Onion.XWingPublic,
			LinkSpecs: []cell.LinkSpec{{Transport: "pipe", Addr: fmt.Sprintf("relay-%d", i)}}})
	}
	return hs
}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestBuildAndDeliver(t *testing.T) {
	for _, n := range []int{3, 5} {
		for _, hybrid := range []bool{false, true} {
			t.Run(fmt.Sprintf("hops=%d/hybrid=%v", n, hybrid), func(t *testing.T) {
				tn := newNet(t, n, nil)
				ctx := ctxT(t)
				c, err := origin.Build(ctx, tn.ClientLink(0, nil), tn.hops(seq(n)...), origin.Options{Hybrid: hybrid})
				if err != nil {
					t.Fatal(err)
				}
				defer c.Destroy()
				if c.Len() != n {
					t.Fatalf("circuit has %d hops", c.Len())
				}
				// Send to the hops in a scrambled order; each reply must come
				// from the hop addressed.
				for _, k := range []int{n - 1, 0, 2, 1, n - 2} {
					msg := fmt.Sprintf("hello hop %d", k)
					if err := c.Send(ctx, k, []byte(msg)); err != nil {
						t.Fatal(err)
					}
					hop, got, err := c.Recv(ctx)
					if err != nil {
						t.Fatal(err)
					}
					if want := fmt.Sprintf("r%d:%s", k, msg); hop != k || string(got) != want {
						t.Fatalf("reply from hop %d: %q, want hop %d %q", hop, got, k, want)
					}
				}
				for i, h := range tn.h {
					for _, m := range h.messages() {
						if !bytes.HasSuffix(m.Data, []byte(fmt.Sprintf("hop %d", i))) {
							t.Fatalf("relay %d got %q", i, m.Data)
						}
					}
				}
			})
		}
	}
}

func TestLargeMessagesAndWindows(t *testing.T) {
	tn := newNet(t, 5, nil)
	ctx := ctxT(t)
	c, err := origin.Build(ctx, tn.ClientLink(0, nil), tn.hops(seq(5)...), origin.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Destroy()
	// More than two windows' worth each way, in messages up to the maximum,
	// so SENDMEs must flow for this to finish.
	sizes := []int{100 << 10, cell.MaxMessage - 3, 1, 0, 300 << 10, 700 << 10, cell.MaxMessage - 3, 65000, 130 << 10, 5}
	sent := make(chan error, 1)
	msgs := make([][]byte, len(sizes))
	for i, n := range sizes {
		msgs[i] = make([]byte, n)
		rand.Read(msgs[i])
	}
	go func() {
		for i := range msgs {
			if err := c.Send(ctx, 4, msgs[i]); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	for i := range msgs {
		hop, got, err := c.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if hop != 4 || !bytes.Equal(got, append([]byte("r4:"), msgs[i]...)) {
			t.Fatalf("message %d (%d bytes) came back wrong from hop %d (%d bytes)", i, len(msgs[i]), hop, len(got))
		}
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if err := c.Send(ctx, 4, make([]byte, cell.MaxMessage+1)); err == nil {
		t.Fatal("message over the maximum sent")
	}
}

func TestExtendFailure(t *testing.T) {
	tn := newNet(t, 3, nil)
	other := newNet(t, 1, nil)
	ctx := ctxT(t)
	c, err := origin.Build(ctx, tn.ClientLink(0, nil), tn.hops(0, 1), origin.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Destroy()
	// A relay the dialer cannot reach.
	err = c.Extend(ctx, other.hops(0)[0])
	var ee *origin.ExtendError
	if !errors.As(err, &ee) || ee.Hop != 1 || ee.Reason != cell.ReasonConnectFailed {
		t.Fatalf("extend to an unknown relay: %v", err)
	}
	// The circuit still works, and can still be extended.
	if err := c.Extend(ctx, tn.hops(2)[0]); err != nil {
		t.Fatal(err)
	}
	if err := c.Send(ctx, 2, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if hop, got, err := c.Recv(ctx); err != nil || hop != 2 || string(got) != "r2:x" {
		t.Fatalf("after a failed extend: %d %q %v", hop, got, err)
	}
	// A wrong onion key: the handshake fails at the new hop, which refuses
	// CREATE; the extending hop reports it.
	c2, err := origin.Build(ctx, tn.ClientLink(0, nil), tn.hops(0), origin.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Destroy()
	bad := tn.hops(1)[0]
	bad.OnionKey = tn.Relays[2].Onion.Public
	if err := c2.Extend(ctx, bad); !errors.As(err, &ee) {
		t.Fatalf("extend with a wrong onion key: %v", err)
	}
}

func TestDestroyPropagates(t *testing.T) {
	tn := newNet(t, 3, nil)
	ctx := ctxT(t)
	c, err := origin.Build(ctx, tn.ClientLink(0, nil), tn.hops(0, 1, 2), origin.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c.Send(ctx, 2, []byte("open"))
	c.Recv(ctx)
	c.Destroy()
	waitFor(t, func() bool {
		for _, r := range tn.Relays {
			if r.Switch.Circuits() != 0 {
				return false
			}
		}
		tn.h[2].mu.Lock()
		defer tn.h[2].mu.Unlock()
		return tn.h[2].closed == 1
	})
	if _, _, err := c.Recv(ctx); err == nil {
		t.Fatal("Recv on a destroyed circuit")
	}
	// A relay in the middle destroying the circuit reaches the client.
	c, err = origin.Build(ctx, tn.ClientLink(0, nil), tn.hops(0, 1, 2), origin.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tn.h[1].onMsg = func(h *circuit.Hop, m circuit.Message) { h.Destroy() }
	c.Send(ctx, 1, []byte("die"))
	select {
	case <-c.Done():
	case <-ctx.Done():
		t.Fatal("client never learned the circuit died")
	}
	var de *origin.DestroyedError
	if !errors.As(c.Err(), &de) || !de.Remote {
		t.Fatalf("error %v", c.Err())
	}
}

// waitFor polls cond until it holds; the test's own deadline bounds it.
func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition never held")
		}
		time.Sleep(time.Millisecond)
	}
}
