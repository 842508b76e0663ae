package hop_test

import (
	"context"
	"crypto/rand"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unfed/unfed/relay/cell"
	"github.com/unfed/unfed/relay/hop"
	"github.com/unfed/unfed/relay/keys"
)

// firstEdge is a rec that notes, at the dealer's first PREP, whether a
// message that waited in a socket had reached its reader by then.
type firstEdge struct {
	rec
	got     *atomic.Bool
	noted   bool
	arrived bool
}

func (r *firstEdge) SendEdge(ctx context.Context, dir cell.Direction, hops int, msg []byte) error {
	if !r.noted {
		r.noted, r.arrived = true, r.got.Load()
	}
	return r.rec.SendEdge(ctx, dir, hops, msg)
}

// dealWhileWaiting deals one step of rows on a dealer with one P
// (GOMAXPROCS=1, as the testnet runs MPC processes) while a message waits in
// a loopback socket for a reader parked in the netpoller, as a cell to
// forward waits for a relay's link reader. It reports whether the reader
// had the message before the first PREP went out, and the deal's wall time.
func dealWhileWaiting(t *testing.T, rows int, commit bool) (arrived bool, took time.Duration) {
	t.Helper()
	id, err := keys.NewIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s := dealerService(t, func(c *hop.Config) { c.Identity = id })
	r := &firstEdge{rec: rec{id: 1}, got: new(atomic.Bool)}
	s.Deliver(r, hop.Inbound{Data: confSetups(t, storiesRanges)[0].Append(nil)})
	if commit {
		// (the dealer then deals from a seed: another StageDealer)
		s.Deliver(r, hop.Inbound{Data: (&hop.CommitOn{Nonce: [32]byte{1}}).Append(nil)})
	}
	want := len(r.sent) // SETUP_OK; with commitments, a PARTY_COMMIT per step
	if _, ok := mustDecode(t, r.sent[0]).(*hop.SetupOK); !ok || want != 1 {
		t.Fatalf("%d answers to SETUP and COMMIT_ON", want)
	}
	if commit {
		want++
	}
	// A first step, unmeasured: the session's first deal sizes and
	// allocates its buffers.
	s.Deliver(r, hop.Inbound{Data: (&hop.Deal{Step: 0, Rows: rows}).Append(nil)})
	r.noted = false
	if commit {
		want++
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		var b [1]byte
		if _, err := server.Read(b[:]); err == nil {
			r.got.Store(true)
		}
	}()
	// The reader parks; the sleep's idle P polls the network, so sysmon's
	// own poll (after 10 ms without one) is far off.
	time.Sleep(2 * time.Millisecond)
	if _, err := client.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	s.Deliver(r, hop.Inbound{Data: (&hop.Deal{Step: 1, Rows: rows}).Append(nil)})
	took = time.Since(start)
	<-done
	if len(r.sent) != want || len(r.edges) == 0 {
		t.Fatalf("%d messages to the client, want %d, and %d PREP fragments", len(r.sent), want, len(r.edges))
	}
	return r.arrived, took
}

func mustDecode(t *testing.T, b []byte) hop.Msg {
	t.Helper()
	m, err := hop.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestDealerPausesEveryPiece: with a slice of 1 ns a dealer yields at every
// pause, several per layer of the step and one per PREP fragment, with or
// without commitments (then its dealer is another StageDealer).
func TestDealerPausesEveryPiece(t *testing.T) {
	defer hop.SetDealSlice(time.Nanosecond)()
	for _, commit := range []bool{false, true} {
		id, err := keys.NewIdentity(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		s := dealerService(t, func(c *hop.Config) { c.Identity = id })
		r := &rec{id: 1}
		setup := confSetups(t, storiesRanges)[0]
		s.Deliver(r, hop.Inbound{Data: setup.Append(nil)})
		if commit {
			s.Deliver(r, hop.Inbound{Data: (&hop.CommitOn{Nonce: [32]byte{1}}).Append(nil)})
		}
		s.Deliver(r, hop.Inbound{Data: (&hop.Deal{Step: 0, Rows: 1}).Append(nil)})
		layers := setup.Last - setup.First
		if got, min := s.DealYields(), uint64(5*layers+len(r.edges)); got < min {
			t.Errorf("commitments %v: %d yields for a step of %d layers and %d PREP fragments, want at least %d",
				commit, got, layers, len(r.edges), min)
		}
	}
}

// TestDealerLetsNetworkThrough: a dealer with one P lets the network
// through while it deals (relay/internal/netyield): a message that arrived
// before a DEAL reaches its reader before the deal's first PREP is sent,
// not after the deal; with commitments too (the session's dealer is another
// then). A dealer that never yields (the mutation: slice 0) must fail it.
func TestDealerLetsNetworkThrough(t *testing.T) {
	for _, commit := range []bool{false, true} {
		name := map[bool]string{false: "plain", true: "commitments"}[commit]
		t.Run(name, func(t *testing.T) {
			defer hop.SetDealSlice(50 * time.Microsecond)()
			if arrived, took := dealWhileWaiting(t, 1, commit); !arrived {
				t.Fatalf("the message waited for the whole deal (%v)", took)
			}
		})
		t.Run(name+"/mutation/no-yield", func(t *testing.T) {
			defer hop.SetDealSlice(0)()
			arrived, took := dealWhileWaiting(t, 1, commit)
			if took > 8*time.Millisecond {
				// sysmon polls a network it has not seen polled for 10 ms.
				t.Skipf("the deal took %v: inconclusive", took)
			}
			if arrived {
				t.Fatalf("without yields the message still arrived during the deal (%v): the test cannot see a dealer that starves its network", took)
			}
		})
	}
}
