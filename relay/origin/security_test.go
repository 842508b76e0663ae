package origin_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/unfed/unfed/relay/cell"
	"github.com/unfed/unfed/relay/circuit"
	"github.com/unfed/unfed/relay/circuit/circuittest"
	"github.com/unfed/unfed/relay/origin"
)

// tamper returns an Alter function that, once armed, applies f to the
// RELAY_FORWARD frames it sees (counting from 0).
type tamper struct {
	armed atomic.Bool
	mu    sync.Mutex
	n     int
	held  []byte
	f     func(t *tamper, i int, frame []byte) [][]byte
}

func (tp *tamper) alter(frame []byte) [][]byte {
	c, err := cell.Decode(frame)
	if !tp.armed.Load() || err != nil || c.Cmd != cell.CmdRelayForward {
		return [][]byte{frame}
	}
	tp.mu.Lock()
	defer tp.mu.Unlock()
	i := tp.n
	tp.n++
	return tp.f(tp, i, frame)
}

func replay(tp *tamper, i int, f []byte) [][]byte {
	if i == 0 {
		return [][]byte{f, bytes.Clone(f)}
	}
	return [][]byte{f}
}

func reorder(tp *tamper, i int, f []byte) [][]byte {
	switch i {
	case 0:
		tp.held = f
		return nil
	case 1:
		return [][]byte{f, tp.held}
	}
	return [][]byte{f}
}

func drop(tp *tamper, i int, f []byte) [][]byte {
	if i == 0 {
		return nil
	}
	return [][]byte{f}
}

func TestReplayedCellDestroysCircuit(t *testing.T) {
	for name, f := range map[string]func(*tamper, int, []byte) [][]byte{"replayed": replay, "reordered": reorder, "dropped": drop} {
		for _, at := range []int{0, 1} { // the relay that sees the tampered stream
			t.Run(name+"/at-relay-"+string(rune('0'+at)), func(t *testing.T) {
				tp := &tamper{f: f}
				tn := newNet(t, 3, nil)
				var first circuit.Link
				if at == 0 {
					first = tn.ClientLink(0, func(l circuit.Link) circuit.Link {
						tap := circuittest.NewTap(l)
						tap.Alter = tp.alter
						return tap
					})
				} else {
					tn.WrapRelayLink = func(reader, peer int, l circuit.Link) circuit.Link {
						if reader != at {
							return l
						}
						tap := circuittest.NewTap(l)
						tap.Alter = tp.alter
						return tap
					}
					first = tn.ClientLink(0, nil)
				}
				ctx := ctxT(t)
				c, err := origin.Build(ctx, first, tn.hops(0, 1, 2), origin.Options{})
				if err != nil {
					t.Fatal(err)
				}
				tp.armed.Store(true)
				for _, m := range []string{"one", "two", "three"} {
					if c.Send(ctx, 2, []byte(m)) != nil {
						break
					}
				}
				select {
				case <-c.Done():
				case <-ctx.Done():
					t.Fatal("circuit survived a tampered cell stream")
				}
				var de *origin.DestroyedError
				if !errors.As(c.Err(), &de) || !de.Remote || de.Reason != cell.ReasonProtocol {
					t.Fatalf("circuit ended with %v, want a remote protocol DESTROY", c.Err())
				}
				reg := tn.Relays[at].Registry
				if circuittest.Counter(reg, "unfed_circuit_destroyed_total", "protocol") < 1 {
					t.Fatal("relay did not count the destroyed circuit")
				}
				if circuittest.Counter(reg, "unfed_circuit_cells_dropped_total", "auth") != 1 {
					t.Fatal("relay did not count the cell that failed authentication")
				}
				waitFor(t, func() bool {
					return tn.Relays[0].Switch.Circuits() == 0 && tn.Relays[1].Switch.Circuits() == 0 && tn.Relays[2].Switch.Circuits() == 0
				})
				// Hop 2 never handled a message out of order: at most the
				// ones that arrived intact, in order.
				for i, m := range tn.h[2].messages() {
					if want := []string{"one", "two", "three"}[i]; string(m.Data) != want && name != "dropped" {
						t.Fatalf("hop 2 got %q as message %d", m.Data, i)
					}
				}
			})
		}
	}
}

// TestGuardSeesNoLaterPayloads records every byte the first hop receives, on
// its client link and on its link to the second hop, while the client and the
// third hop exchange messages, and checks none of their plaintext appears.
func TestGuardSeesNoLaterPayloads(t *testing.T) {
	var mu sync.Mutex
	var taps []*circuittest.Tap
	record := func(l circuit.Link) circuit.Link {
		tap := circuittest.NewTap(l)
		mu.Lock()
		taps = append(taps, tap)
		mu.Unlock()
		return tap
	}
	tn := newNet(t, 4, nil)
	tn.WrapRelayLink = func(reader, peer int, l circuit.Link) circuit.Link {
		if reader == 0 {
			return record(l)
		}
		return l
	}
	ctx := ctxT(t)
	c, err := origin.Build(ctx, tn.ClientLink(0, record), tn.hops(0, 1, 2, 3), origin.Options{Hybrid: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Destroy()
	secrets := map[int][]byte{}
	for _, k := range []int{1, 2, 3} {
		s := make([]byte, 3000*k)
		rand.Read(s)
		secrets[k] = s
		if err := c.Send(ctx, k, s); err != nil {
			t.Fatal(err)
		}
		hop, got, err := c.Recv(ctx)
		if err != nil || hop != k || !bytes.HasSuffix(got, s) {
			t.Fatalf("echo from hop %d: %v", hop, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(taps) != 2 {
		t.Fatalf("recorded %d links of the guard, want 2", len(taps))
	}
	var all []byte
	for _, tap := range taps {
		for _, f := range tap.Frames() {
			all = append(all, f...)
		}
	}
	if len(all) == 0 {
		t.Fatal("nothing recorded")
	}
	for k, s := range secrets {
		for off := 0; off+16 <= len(s); off += 16 {
			if bytes.Contains(all, s[off:off+16]) {
				t.Fatalf("16 bytes of hop %d's payload appear in what the guard received", k)
			}
		}
	}
	for _, m := range tn.h[0].messages() {
		for _, s := range secrets {
			if bytes.Contains(m.Data, s[:16]) {
				t.Fatal("the guard's handler saw a later hop's payload")
			}
		}
	}
}

func TestEdgeMessages(t *testing.T) {
	ctx := ctxT(t)
	tn := newNet(t, 4, nil)
	big := make([]byte, 200<<10)
	rand.Read(big)
	edges := make(chan circuit.Message, 8)
	errs := make(chan error, 8)
	// Hop 2's reply reports on its own channel: sharing errs let it land
	// between hop 1's results, which the loop below reads in order.
	replyErrs := make(chan error, 1)
	// Hop 1 sends forward two hops (to hop 3) and backward to hop 0 when told.
	tn.h[1].onMsg = func(h *circuit.Hop, m circuit.Message) {
		if m.Edge {
			edges <- m
			return
		}
		errs <- h.SendEdge(ctx, cell.Forward, 2, big)
		errs <- h.SendEdge(ctx, cell.Forward, 1, []byte("to hop 2"))
		errs <- h.SendEdge(ctx, cell.Backward, 1, []byte("to hop 0"))
		errs <- h.SendEdge(ctx, cell.Backward, 2, []byte("too far"))
	}
	// Hop 0 (the guard, on the client's link) may not send backward.
	tn.h[0].onMsg = func(h *circuit.Hop, m circuit.Message) {
		if m.Edge {
			edges <- m
			return
		}
		errs <- h.SendEdge(ctx, cell.Backward, 1, []byte("to the client"))
	}
	tn.h[2].onMsg = func(h *circuit.Hop, m circuit.Message) {
		edges <- m
		if m.Edge {
			replyErrs <- h.SendEdge(ctx, cell.Backward, 1, []byte("reply to hop 1"))
		}
	}
	tn.h[3].onMsg = func(h *circuit.Hop, m circuit.Message) { edges <- m }
	c, err := origin.Build(ctx, tn.ClientLink(0, nil), tn.hops(0, 1, 2, 3), origin.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Destroy()
	c.Send(ctx, 0, []byte("go"))
	if err := <-errs; err == nil {
		t.Fatal("the guard sent an edge message onto the client's link")
	}
	c.Send(ctx, 1, []byte("go"))
	for i, wantErr := range []bool{false, false, false, true} {
		if err := <-errs; (err != nil) != wantErr {
			t.Fatalf("SendEdge %d: %v", i, err)
		}
	}
	seen := map[string]circuit.Message{}
	for range 4 {
		select {
		case m := <-edges:
			switch {
			case bytes.Equal(m.Data, big):
				seen["big"] = m
			default:
				seen[string(m.Data)] = m
			}
		case <-ctx.Done():
			t.Fatalf("edge messages missing; have %d", len(seen))
		}
	}
	if m, ok := seen["big"]; !ok || !m.Edge || m.Dir != cell.Forward || m.Distance != 2 {
		t.Fatalf("forward 2-hop edge: %+v", ok)
	}
	if m := seen["to hop 2"]; !m.Edge || m.Dir != cell.Forward || m.Distance != 1 {
		t.Fatalf("forward 1-hop edge: %+v", m)
	}
	if m := seen["to hop 0"]; !m.Edge || m.Dir != cell.Backward || m.Distance != 1 {
		t.Fatalf("backward edge: %+v", m)
	}
	if m := seen["reply to hop 1"]; !m.Edge || m.Dir != cell.Backward {
		t.Fatalf("backward edge reply: %+v", m)
	}
	for _, m := range tn.h[3].messages() {
		if !bytes.Equal(m.Data, big) {
			t.Fatalf("hop 3 got an edge message not meant for it (%d bytes)", len(m.Data))
		}
	}
	if err := <-replyErrs; err != nil {
		t.Fatal(err)
	}
}

// TestSlowHopBoundsBuffering stalls hop 2's handler: the client runs out of
// credit and Send blocks instead of the relays buffering without bound; once
// the handler resumes, everything arrives.
func TestSlowHopBoundsBuffering(t *testing.T) {
	release := make(chan struct{})
	var handled atomic.Int64
	tn := newNet(t, 3, nil)
	tn.h[2].onMsg = func(h *circuit.Hop, m circuit.Message) {
		<-release
		handled.Add(1)
	}
	ctx := ctxT(t)
	c, err := origin.Build(ctx, tn.ClientLink(0, nil), tn.hops(0, 1, 2), origin.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Destroy()
	msg := make([]byte, 60<<10) // one large cell each
	sent := 0
	for {
		short, cancel := context.WithTimeout(ctx, 300e6)
		err := c.Send(short, 2, msg)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		sent++
		if sent > 2*cell.Window/cell.ClassLarge {
			t.Fatalf("sent %d large cells without credit running out", sent)
		}
	}
	if sent < cell.Window/cell.ClassLarge {
		t.Fatalf("credit ran out after %d cells, window allows %d", sent, cell.Window/cell.ClassLarge)
	}
	close(release)
	waitFor(t, func() bool { return handled.Load() >= int64(sent) })
	// Credit came back: sending works again.
	if err := c.Send(ctx, 2, msg); err != nil {
		t.Fatal(err)
	}
}
