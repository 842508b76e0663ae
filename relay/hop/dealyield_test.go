package hop_test

import (
	"context"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unfed/unfed/relay/cell"
	"github.com/unfed/unfed/relay/hop"
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
func dealWhileWaiting(t *testing.T, rows int) (arrived bool, took time.Duration) {
	t.Helper()
	s := dealerService(t)
	r := &firstEdge{rec: rec{id: 1}, got: new(atomic.Bool)}
	if m := deliverSetup(t, s, r, confSetups(t, storiesRanges)[0]); m == nil {
		t.Fatal("no SETUP_OK")
	}
	// A first step, unmeasured: the session's first deal sizes and
	// allocates its buffers.
	s.Deliver(r, hop.Inbound{Data: (&hop.Deal{Step: 0, Rows: rows}).Append(nil)})
	r.noted = false
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
	if len(r.sent) != 1 || len(r.edges) == 0 {
		t.Fatalf("the DEAL answered %d messages and sent %d PREP fragments", len(r.sent)-1, len(r.edges))
	}
	return r.arrived, took
}

func deliverSetup(t *testing.T, s *hop.Service, r *firstEdge, m hop.Msg) hop.Msg {
	t.Helper()
	s.Deliver(r, hop.Inbound{Data: m.Append(nil)})
	if len(r.sent) != 1 {
		return nil
	}
	return m
}

// TestDealerLetsNetworkThrough: a dealer with one P lets the network
// through while it deals (relay/internal/netyield): a message that arrived
// before a DEAL reaches its reader before the deal's first PREP is sent,
// not after the deal. A dealer that never yields (the mutation: slice 0)
// must fail it.
func TestDealerLetsNetworkThrough(t *testing.T) {
	defer hop.SetDealSlice(50 * time.Microsecond)()
	if arrived, took := dealWhileWaiting(t, 1); !arrived {
		t.Fatalf("the message waited for the whole deal (%v)", took)
	}
	t.Run("mutation/no-yield", func(t *testing.T) {
		defer hop.SetDealSlice(0)()
		arrived, took := dealWhileWaiting(t, 1)
		if took > 8*time.Millisecond {
			// sysmon polls a network it has not seen polled for 10 ms.
			t.Skipf("the deal took %v: inconclusive", took)
		}
		if arrived {
			t.Fatalf("without yields the message still arrived during the deal (%v): the test cannot see a dealer that starves its network", took)
		}
	})
}
