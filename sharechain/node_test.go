package sharechain

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/unfed/unfed/relay/keys"
)

func newNode(t *testing.T, p Params, ks *KeySet, id *keys.Identity) *Node {
	t.Helper()
	n, err := NewNode(context.Background(), NodeConfig{Params: p, Keys: ks, DB: openDB(t), Identity: id})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	return n
}

// deliver gossips b from src to dst, fetching missing ancestors from src
// the way a peer would (GET_BLOCK, then BLOCK, then the block again).
func deliver(t *testing.T, src, dst *Node, b *Block, nowMs uint64) {
	t.Helper()
	ctx := context.Background()
	for depth := 0; ; depth++ {
		replies, err := dst.HandleGossip(ctx, EncodeGossip(MsgBlock, b.Marshal()), nowMs)
		if err != nil {
			t.Fatal(err)
		}
		if len(replies) == 0 {
			return
		}
		if depth > 100 {
			t.Fatal("ancestor fetch does not end")
		}
		// dst asked for the parent or uncles: src answers, dst takes them first.
		for _, ask := range replies {
			ans, err := src.HandleGossip(ctx, ask, nowMs)
			if err != nil || len(ans) != 1 {
				t.Fatalf("GET_BLOCK answer: %v (%d frames)", err, len(ans))
			}
			m, err := ParseGossip(ans[0])
			if err != nil {
				t.Fatal(err)
			}
			deliver(t, src, dst, m.Block, nowMs)
		}
	}
}

// TestPaidWork: a client pays three relays from its wallet for work; each
// relay produces share blocks and gossips them to the others and to an
// authority that follows the chain. Every node ends on the same tip; each
// relay's work on the chain equals the units it was paid for; the payouts
// of the matured blocks sum exactly to their value and equal an independent
// computation from the relays' shares.
func TestPaidWork(t *testing.T) {
	ctx := context.Background()
	m := testMint(t, nil)
	ks := keySetOf(t, m)
	p := DefaultParams("t")
	p.Window, p.Maturity = 6, 3
	wdb := openDB(t)
	w := NewWallet(wdb)
	if _, err := w.Request(ctx, m, "d", keyOf(t, m, 10), 30); err != nil {
		t.Fatal(err)
	}
	ids := []*keys.Identity{identity(t, 1), identity(t, 2), identity(t, 3)}
	relays := make([]*Node, 3)
	for i := range relays {
		relays[i] = newNode(t, p, ks, ids[i])
	}
	auth := newNode(t, p, ks, nil)
	all := append(append([]*Node{}, relays...), auth)
	paidUnits := map[keys.Fingerprint]uint64{}
	now := uint64(testNowMs)
	for round := 0; round < 15; round++ {
		i := round % 3
		units := uint32(100*(i+1) + round)
		cs, err := w.Spend(ctx, 20, testEpoch)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			if err := relays[i].Pay(ctx, c.Pay(relays[i].cfg.Identity.Fingerprint(), units), now); err != nil {
				t.Fatal(err)
			}
			paidUnits[ids[i].Fingerprint()] += uint64(units)
		}
		b, err := relays[i].Produce(ctx, now)
		if err != nil || b == nil {
			t.Fatalf("produce: %v", err)
		}
		for _, n := range all {
			if n != relays[i] {
				deliver(t, relays[i], n, b, now)
			}
		}
		now += 10_000
	}
	tip := relays[0].Chain().Tip().ID()
	for _, n := range all {
		if n.Chain().Tip().ID() != tip {
			t.Fatal("nodes disagree on the tip")
		}
	}
	// A node that joins late hears only of the tip and fetches the rest.
	late := newNode(t, p, ks, nil)
	deliver(t, relays[0], late, relays[0].Chain().Tip(), now)
	if late.Chain().Tip().ID() != tip || late.Chain().Len() != 15 {
		t.Fatalf("late node has %d blocks", late.Chain().Len())
	}
	for _, rw := range auth.Chain().Work() {
		if rw.Units != paidUnits[rw.Relay] {
			t.Fatalf("relay %s: %d units on the chain, paid for %d", rw.Relay, rw.Units, paidUnits[rw.Relay])
		}
	}
	s := auth.Chain().Payouts()
	if s.Matured != 12 || s.Value != 12*20 || s.Paid != s.Value || s.Carried != 0 {
		t.Fatalf("payouts %+v", s)
	}
	want := expectPayouts(auth.Chain().MainChain()[:12], p, ks, nil)
	for _, r := range s.Relays {
		if r.Amount != want[r.Relay] {
			t.Fatalf("relay %s paid %d, want %d", r.Relay, r.Amount, want[r.Relay])
		}
	}
	if b, _ := w.Balance(ctx, testEpoch); b.Total != 0 {
		t.Fatalf("wallet has %d left", b.Total)
	}
}

// TestDoubleSpendAcrossRelays: one credit paid at two relays at once. Both
// accept (separate spent sets) and both produce a block; after gossip the
// nodes agree on one tip, the credit counts once, the loser's block is not
// taken as an uncle, and a third payment with the credit is refused.
func TestDoubleSpendAcrossRelays(t *testing.T) {
	ctx := context.Background()
	m := testMint(t, nil)
	ks := keySetOf(t, m)
	p := DefaultParams("t")
	cs := credits(t, m, 1, 2)
	a := newNode(t, p, ks, identity(t, 1))
	b := newNode(t, p, ks, identity(t, 2))
	c := newNode(t, p, ks, identity(t, 3))
	if err := a.Pay(ctx, cs[0].Pay(a.cfg.Identity.Fingerprint(), 1), testNowMs); err != nil {
		t.Fatal(err)
	}
	if err := b.Pay(ctx, cs[0].Pay(b.cfg.Identity.Fingerprint(), 1), testNowMs); err != nil {
		t.Fatal(err)
	}
	ba, _ := a.Produce(ctx, testNowMs)
	bb, _ := b.Produce(ctx, testNowMs)
	for _, pair := range [][2]*Node{{a, b}, {a, c}, {b, a}, {b, c}} {
		blk := ba
		if pair[0] == b {
			blk = bb
		}
		deliver(t, pair[0], pair[1], blk, testNowMs)
	}
	tip := a.Chain().Tip().ID()
	if b.Chain().Tip().ID() != tip || c.Chain().Tip().ID() != tip {
		t.Fatal("nodes disagree after the race")
	}
	for _, n := range []*Node{a, b, c} {
		if err := n.Pay(ctx, cs[0].Pay(n.cfg.Identity.Fingerprint(), 1), testNowMs); !errors.Is(err, ErrDoubleSpend) {
			t.Fatalf("third payment: %v", err)
		}
	}
	if err := c.Pay(ctx, cs[1].Pay(c.cfg.Identity.Fingerprint(), 1), testNowMs); err != nil {
		t.Fatal(err)
	}
	next, err := c.Produce(ctx, testNowMs+1)
	if err != nil {
		t.Fatal(err)
	}
	if len(next.Uncles) != 0 {
		t.Fatal("the losing block, which spends the same credit, became an uncle")
	}
	n := 0
	for _, blk := range c.Chain().MainChain() {
		for _, e := range blk.Entries {
			if e.Credit.ID() == cs[0].Credit.ID() {
				n++
			}
		}
	}
	if n != 1 {
		t.Fatalf("credit counted %d times", n)
	}
}

// TestUncleProduced: two relays produce on the same parent; the next block
// takes the other as an uncle.
func TestUncleProduced(t *testing.T) {
	ctx := context.Background()
	m := testMint(t, nil)
	ks := keySetOf(t, m)
	p := DefaultParams("t")
	cs := credits(t, m, 1, 3)
	a := newNode(t, p, ks, identity(t, 1))
	b := newNode(t, p, ks, identity(t, 2))
	a.Pay(ctx, cs[0].Pay(a.cfg.Identity.Fingerprint(), 5), testNowMs)
	b.Pay(ctx, cs[1].Pay(b.cfg.Identity.Fingerprint(), 5), testNowMs)
	ba, _ := a.Produce(ctx, testNowMs)
	bb, _ := b.Produce(ctx, testNowMs)
	deliver(t, a, b, ba, testNowMs)
	deliver(t, b, a, bb, testNowMs)
	win := a.Chain().Tip()
	prod := a
	if win.ID() == ba.ID() {
		prod = b // the relay whose block lost builds on the winner
	}
	if err := prod.Pay(ctx, cs[2].Pay(prod.cfg.Identity.Fingerprint(), 5), testNowMs); err != nil {
		t.Fatal(err)
	}
	next, err := prod.Produce(ctx, testNowMs+1)
	if err != nil {
		t.Fatal(err)
	}
	if next.Parent != win.ID() || len(next.Uncles) != 1 {
		t.Fatalf("next block: parent %x, %d uncles", next.Parent[:4], len(next.Uncles))
	}
	// A node that has seen none of it fetches the parent and the uncle.
	fresh := newNode(t, p, ks, nil)
	deliver(t, prod, fresh, next, testNowMs+1)
	if fresh.Chain().Tip().ID() != next.ID() || fresh.Chain().Len() != 3 {
		t.Fatalf("fresh node: %d blocks", fresh.Chain().Len())
	}
}

// TestNodeAPIAndMetrics serves a node on 127.0.0.1 and reads the explorer
// API; gossip over HTTP delivers a block; metrics count what happened.
func TestNodeAPIAndMetrics(t *testing.T) {
	ctx := context.Background()
	m := testMint(t, nil)
	ks := keySetOf(t, m)
	p := DefaultParams("t")
	cs := credits(t, m, 1, 2)
	a := newNode(t, p, ks, identity(t, 1))
	follower := newNode(t, p, ks, nil)
	if err := a.Pay(ctx, cs[0].Pay(a.cfg.Identity.Fingerprint(), 3), testNowMs); err != nil {
		t.Fatal(err)
	}
	if err := a.Pay(ctx, cs[0].Pay(a.cfg.Identity.Fingerprint(), 3), testNowMs); !errors.Is(err, ErrDoubleSpend) {
		t.Fatal(err)
	}
	blk, _ := a.Produce(ctx, testNowMs)
	srv := httptest.NewServer(follower.Handler(func() uint64 { return testNowMs }))
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/sharechain/v1/gossip", "application/octet-stream", bytes.NewReader(EncodeGossip(MsgBlock, blk.Marshal())))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("gossip: %s", resp.Status)
	}
	resp, _ = http.Post(srv.URL+"/sharechain/v1/gossip", "application/octet-stream", bytes.NewReader([]byte{9, 0, 0, 0, 0}))
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad frame: %s", resp.Status)
	}
	var st StatusDoc
	getJSON(t, srv.URL+"/sharechain/v1/status", &st)
	if st.Height != 1 || st.Tip != hexID(blk.ID()) || st.Blocks != 1 {
		t.Fatalf("status %+v", st)
	}
	var bl []BlockDoc
	getJSON(t, srv.URL+"/sharechain/v1/blocks?limit=5", &bl)
	if len(bl) != 1 || bl[0].Units != 3 || bl[0].Producer != identity(t, 1).Fingerprint().String() {
		t.Fatalf("blocks %+v", bl)
	}
	resp, _ = http.Get(srv.URL + "/sharechain/v1/block/" + hexID(blk.ID()))
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(raw, blk.Marshal()) {
		t.Fatal("block endpoint returned other bytes")
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(a.Collectors()...)
	if got := testutil.ToFloat64(a.m.redeemed); got != 1 {
		t.Fatalf("redemptions_total %v", got)
	}
	if got := testutil.ToFloat64(a.m.doubleSpends); got != 1 {
		t.Fatalf("double_spends_total %v", got)
	}
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 6 {
		t.Fatalf("gathered %d metrics, %v", n, err)
	}
	if got := testutil.ToFloat64(follower.m.rejected); got != 1 {
		t.Fatalf("follower rejected %v frames, want 1", got)
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func FuzzParseGossip(f *testing.F) {
	p := DefaultParams("t")
	f.Add(EncodeGossip(MsgBlock, mkBlock(f, p, identity(f, 1), nil, testNowMs, nil).Marshal()))
	f.Add(EncodeGossip(MsgGetBlock, make([]byte, 32)))
	f.Add([]byte{2, 0, 0, 0, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		if frames, err := SplitGossip(b, 16); err == nil {
			var n int
			for _, fr := range frames {
				n += len(fr)
			}
			if n != len(b) {
				t.Fatal("split frames do not cover the input")
			}
		}
		m, err := ParseGossip(b)
		if err != nil {
			return
		}
		var again []byte
		if m.Type == MsgBlock {
			again = EncodeGossip(MsgBlock, m.Block.Marshal())
		} else {
			again = EncodeGossip(MsgGetBlock, m.BlockID[:])
		}
		if !bytes.Equal(again, b) {
			t.Fatal("gossip frame does not re-encode")
		}
	})
}

// TestNodeRepairsSpentSet: a node restarted on a store whose chain holds a
// credit its spent set lacks (a crash between the two writes) refuses that
// credit afterwards.
func TestNodeRepairsSpentSet(t *testing.T) {
	ctx := context.Background()
	m := testMint(t, nil)
	ks := keySetOf(t, m)
	p := DefaultParams("t")
	c := credits(t, m, 1, 1)[0]
	dir := t.TempDir()
	db, _ := OpenDB(dir)
	ch, _ := NewChain(ctx, p, ks, db)
	if err := ch.Add(ctx, mkBlock(t, p, identity(t, 1), nil, testNowMs, nil, pay(c, 1)), testNowMs); err != nil {
		t.Fatal(err)
	}
	if ok, _ := db.Spent(ctx, c.Credit.ID()); ok {
		t.Fatal("setup: credit already in the spent set")
	}
	n, err := NewNode(ctx, NodeConfig{Params: p, Keys: ks, DB: db, Identity: identity(t, 2)})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	defer db.Close()
	if ok, _ := db.Spent(ctx, c.Credit.ID()); !ok {
		t.Fatal("the chain's credit was not added to the spent set at start")
	}
}

// TestProduceDropsExpired: a paid entry whose credit expires before the
// relay produces (two epochs later) is dropped rather than blocking every
// later block.
func TestProduceDropsExpired(t *testing.T) {
	ctx := context.Background()
	m := testMint(t, nil)
	ks := keySetOf(t, m)
	p := DefaultParams("t")
	a := newNode(t, p, ks, identity(t, 1))
	cs := credits(t, m, 1, 1)
	if err := a.Pay(ctx, cs[0].Pay(identity(t, 1).Fingerprint(), 1), testNowMs); err != nil {
		t.Fatal(err)
	}
	late := uint64(testNowMs + 2*86400*1000)
	if _, err := a.Produce(ctx, late); err == nil {
		t.Fatal("a block of an expired credit was produced")
	}
	if a.Pending() != 0 {
		t.Fatalf("%d expired entries still pending", a.Pending())
	}
}

// TestPull: a node that takes no gossip catches up with a peer's chain by
// pulling its tip and the blocks below it (spec 12 §5.4), then builds on
// that tip; a peer serving a block that is not the one asked for is an
// error, not a stored block.
func TestPull(t *testing.T) {
	ctx := context.Background()
	m := testMint(t, nil)
	ks := keySetOf(t, m)
	p := DefaultParams("t")
	src := newNode(t, p, ks, identity(t, 1))
	dst := newNode(t, p, ks, identity(t, 2))
	now := uint64(testNowMs)
	cs := credits(t, m, 10, 6)
	for i := range 5 {
		if err := src.Pay(ctx, cs[i].Pay(src.cfg.Identity.Fingerprint(), 10), now); err != nil {
			t.Fatal(err)
		}
		if _, err := src.Produce(ctx, now); err != nil {
			t.Fatal(err)
		}
		now += 10_000
	}
	srv := httptest.NewServer(src.Handler(func() uint64 { return now }))
	defer srv.Close()
	n, err := dst.Pull(ctx, srv.Client(), srv.URL, now)
	if err != nil || n != 5 {
		t.Fatalf("pulled %d blocks: %v", n, err)
	}
	if dst.Chain().Tip().ID() != src.Chain().Tip().ID() {
		t.Fatal("tips differ after the pull")
	}
	if n, err := dst.Pull(ctx, srv.Client(), srv.URL, now); err != nil || n != 0 {
		t.Fatalf("second pull: %d blocks, %v", n, err)
	}
	// dst's next block goes on the pulled tip.
	if err := dst.Pay(ctx, cs[5].Pay(dst.cfg.Identity.Fingerprint(), 10), now); err != nil {
		t.Fatal(err)
	}
	b, err := dst.Produce(ctx, now)
	if err != nil || b.Height != 6 || b.Parent != src.Chain().Tip().ID() {
		t.Fatalf("block after the pull: %v", err)
	}
	// A peer that answers with another block than the one asked for.
	liar := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/sharechain/v1/status" {
			json.NewEncoder(w).Encode(StatusDoc{Tip: hexID(BlockID{1})})
			return
		}
		w.Write(src.Chain().MainChain()[0].Marshal())
	}))
	defer liar.Close()
	fresh := newNode(t, p, ks, nil)
	if _, err := fresh.Pull(ctx, liar.Client(), liar.URL, now); err == nil || fresh.Chain().Len() != 0 {
		t.Fatalf("pulled from a peer serving the wrong block: %v, %d blocks", err, fresh.Chain().Len())
	}
}

// TestRecarryOrphaned: a relay whose only block lost the fork choice and
// was never taken as an uncle (the winner never saw it, and the loser had
// nothing more to put in a block while the uncle depth passed) carries the
// block's entries again on the best tip, so its paid work counts once;
// while the block can still be an uncle it is left alone.
func TestRecarryOrphaned(t *testing.T) {
	for _, restart := range []bool{false, true} {
		t.Run(fmt.Sprintf("restart=%v", restart), func(t *testing.T) { testRecarryOrphaned(t, restart) })
	}
}

// testRecarryOrphaned, with restart, restarts the losing relay on its store
// before it carries the entries again: its own stored block that fell off
// the best chain is found again at reload (spec 12 §3.3).
func testRecarryOrphaned(t *testing.T, restart bool) {
	ctx := context.Background()
	m := testMint(t, nil)
	ks := keySetOf(t, m)
	p := DefaultParams("t")
	cs := credits(t, m, 1, 2+int(p.UncleDepth)+1)
	a := newNode(t, p, ks, identity(t, 1))
	b := newNode(t, p, ks, identity(t, 2))
	judge := newNode(t, p, ks, nil) // sees both, says which wins
	now := uint64(testNowMs)
	a.Pay(ctx, cs[0].Pay(a.cfg.Identity.Fingerprint(), 5), now)
	b.Pay(ctx, cs[1].Pay(b.cfg.Identity.Fingerprint(), 5), now)
	ba, _ := a.Produce(ctx, now)
	bb, _ := b.Produce(ctx, now)
	deliver(t, a, judge, ba, now)
	deliver(t, b, judge, bb, now)
	lost, loser, winner, won := ba, a, b, bb
	if judge.Chain().Tip().ID() == ba.ID() {
		lost, loser, winner, won = bb, b, a, ba
	}
	deliver(t, winner, loser, won, now) // the winner never hears of the lost block
	// The loser has nothing to pay for; while its block can be an uncle,
	// Produce makes nothing.
	if blk, err := loser.Produce(ctx, now+1); err != nil || blk != nil {
		t.Fatalf("produced %v, %v while the lost block can be an uncle", blk, err)
	}
	// The winner's chain grows past the uncle depth; the loser follows.
	for i := range int(p.UncleDepth) + 1 {
		now += 10
		if err := winner.Pay(ctx, cs[2+i].Pay(winner.cfg.Identity.Fingerprint(), 5), now); err != nil {
			t.Fatal(err)
		}
		nb, err := winner.Produce(ctx, now)
		if err != nil {
			t.Fatal(err)
		}
		deliver(t, winner, loser, nb, now)
	}
	id := lost.Entries[0].Credit.ID()
	if loser.Chain().Counted(id) || loser.Chain().CanBeUncle(lost.ID()) {
		t.Fatal("the lost block counts or can still be an uncle past the uncle depth")
	}
	if restart {
		loser.Close()
		var err error
		if loser, err = NewNode(ctx, loser.cfg); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(loser.Close)
	}
	tip := loser.Chain().Tip().ID()
	nb, err := loser.Produce(ctx, now+1)
	if err != nil || nb == nil {
		t.Fatalf("re-carrying block: %v, %v", nb, err)
	}
	if nb.Parent != tip || len(nb.Entries) != 1 || nb.Entries[0].Credit.ID() != id || !loser.Chain().Counted(id) {
		t.Fatal("the re-carried entry does not count on the best chain")
	}
	// It happens once: the next Produce has nothing.
	if blk, err := loser.Produce(ctx, now+2); err != nil || blk != nil {
		t.Fatalf("produced again: %v, %v", blk, err)
	}
}

// TestPendingSurvivesRestart: entries a relay has redeemed but not yet put
// in a block are stored with their redemption (spec 12 §8). The node is
// dropped without producing (its store closed as a crash would leave it:
// every acknowledged transaction committed, nothing flushed by the node);
// on reopen the entries are pending again, the next block carries each of
// them exactly once, and a later reopen finds nothing left to carry.
func TestPendingSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	p := DefaultParams("test")
	m := testMint(t, nil)
	ks := keySetOf(t, m)
	id := identity(t, 1)
	dir := t.TempDir()
	open := func() (*DB, *Node) {
		db, err := OpenDB(dir)
		if err != nil {
			t.Fatal(err)
		}
		n, err := NewNode(ctx, NodeConfig{Params: p, Keys: ks, DB: db, Identity: id})
		if err != nil {
			t.Fatal(err)
		}
		return db, n
	}
	cs := credits(t, m, 1, 5)
	db, n := open()
	for _, c := range cs[:3] {
		if err := n.Pay(ctx, c.Pay(id.Fingerprint(), 2), testNowMs); err != nil {
			t.Fatal(err)
		}
	}
	if b, err := n.Produce(ctx, testNowMs); err != nil || b == nil || len(b.Entries) != 3 {
		t.Fatalf("first block: %v, %v", b, err)
	}
	for _, c := range cs[3:] {
		if err := n.Pay(ctx, c.Pay(id.Fingerprint(), 2), testNowMs); err != nil {
			t.Fatal(err)
		}
	}
	if k, err := db.PendingCount(ctx); err != nil || k != 2 {
		t.Fatalf("stored pending entries: %d, %v; want 2", k, err)
	}
	n.Close()
	db.Close()

	db, n = open()
	if got := n.Pending(); got != 2 {
		t.Fatalf("after restart %d entries pending, want 2", got)
	}
	// The reloaded entries are still spent: paying them again is refused.
	if err := n.Pay(ctx, cs[4].Pay(id.Fingerprint(), 2), testNowMs); !errors.Is(err, ErrDoubleSpend) {
		t.Fatalf("second payment with a pending credit: %v", err)
	}
	b, err := n.Produce(ctx, testNowMs+1)
	if err != nil || b == nil || len(b.Entries) != 2 {
		t.Fatalf("block after restart: %v, %v", b, err)
	}
	if b2, err := n.Produce(ctx, testNowMs+2); err != nil || b2 != nil {
		t.Fatalf("a second block after restart: %v, %v", b2, err)
	}
	if k, err := db.PendingCount(ctx); err != nil || k != 0 {
		t.Fatalf("stored pending entries after the block: %d, %v", k, err)
	}
	n.Close()
	db.Close()

	db, n = open()
	defer db.Close()
	defer n.Close()
	if got := n.Pending(); got != 0 {
		t.Fatalf("after the second restart %d entries pending, want 0", got)
	}
	seen := map[CreditID]int{}
	var units uint64
	for _, b := range n.Chain().MainChain() {
		for _, e := range b.Entries {
			seen[e.Credit.ID()]++
		}
		units += b.Units()
	}
	for _, c := range cs {
		if seen[c.Credit.ID()] != 1 {
			t.Fatalf("credit counted %d times on the chain, want 1", seen[c.Credit.ID()])
		}
	}
	if len(seen) != len(cs) || units != 10 {
		t.Fatalf("chain carries %d credits, %d units; want %d, 10", len(seen), units, len(cs))
	}
}

// TestPendingDroppedWithBlock: a block and the deletion of the pending rows
// it settles are one transaction; a pending row whose credit a stored block
// already counts (left by an older store) is deleted at reload, not
// carried twice.
func TestPendingDroppedWithBlock(t *testing.T) {
	ctx := context.Background()
	p := DefaultParams("test")
	m := testMint(t, nil)
	ks := keySetOf(t, m)
	id := identity(t, 1)
	dir := t.TempDir()
	db, err := OpenDB(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	n, err := NewNode(ctx, NodeConfig{Params: p, Keys: ks, DB: db, Identity: id})
	if err != nil {
		t.Fatal(err)
	}
	c := credits(t, m, 1, 1)[0]
	e := c.Pay(id.Fingerprint(), 1)
	if err := n.Pay(ctx, e, testNowMs); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Produce(ctx, testNowMs); err != nil {
		t.Fatal(err)
	}
	n.Close()
	// Put the row back, as if the block had been stored without it.
	cid := c.Credit.ID()
	if _, err := db.sql.Exec("INSERT OR REPLACE INTO pending(credit_id, units, credit, spend_sig) VALUES (?,?,?,?)",
		cid[:], 1, c.Credit.Marshal(), e.SpendSig); err != nil {
		t.Fatal(err)
	}
	n, err = NewNode(ctx, NodeConfig{Params: p, Keys: ks, DB: db, Identity: id})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if n.Pending() != 0 {
		t.Fatalf("a counted credit reloaded as pending")
	}
	if k, _ := db.PendingCount(ctx); k != 0 {
		t.Fatalf("%d pending rows left for a counted credit", k)
	}
}

// TestRedeemedEntriesSkipOnlyThemselves: validating a node's own block does
// not verify again the entries it redeemed, but an entry that differs from
// a redeemed one (units changed, so the spend signature no longer covers
// them) is still checked and refused.
func TestRedeemedEntriesSkipOnlyThemselves(t *testing.T) {
	ctx := context.Background()
	m := testMint(t, nil)
	ks := keySetOf(t, m)
	p := DefaultParams("t")
	id := identity(t, 1)
	n := newNode(t, p, ks, id)
	e := credits(t, m, 1, 1)[0].Pay(id.Fingerprint(), 5)
	if err := n.Pay(ctx, e, testNowMs); err != nil {
		t.Fatal(err)
	}
	forged := e
	forged.Units = 6
	b := &Block{Height: 1, Parent: p.Genesis(), TimeMs: testNowMs, Entries: []Entry{forged}}
	if err := b.Sign(id); err != nil {
		t.Fatal(err)
	}
	if err := n.Chain().Add(ctx, b, testNowMs); err == nil {
		t.Fatal("an entry with units its spend signature does not cover was accepted")
	}
	if blk, err := n.Produce(ctx, testNowMs); err != nil || blk == nil {
		t.Fatalf("the redeemed entry's own block: %v", err)
	}
}

// TestBlockStoreHoldsNoReader: while a node's block waits for its durable
// store (here, behind a write transaction the test holds), the chain's
// readers go on: Pay's Counted check does not wait for the block's store,
// so payments are not held up by every block the relay makes.
func TestBlockStoreHoldsNoReader(t *testing.T) {
	ctx := context.Background()
	m := testMint(t, nil)
	id := identity(t, 1)
	db := openDB(t)
	n, err := NewNode(ctx, NodeConfig{Params: DefaultParams("test"), Keys: keySetOf(t, m), DB: db, Identity: id})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	c := credits(t, m, 1, 1)[0]
	if err := n.Pay(ctx, c.Pay(id.Fingerprint(), 1), testNowMs); err != nil {
		t.Fatal(err)
	}
	db.wmu.Lock() // the block's store waits behind this "writer"
	produced := make(chan error, 1)
	go func() {
		_, err := n.Produce(ctx, testNowMs)
		produced <- err
	}()
	// Wait until Produce is adding its block (it holds addMu from validation
	// to the store's end).
	for deadline := time.Now().Add(30 * time.Second); n.chain.addMu.TryLock(); {
		n.chain.addMu.Unlock()
		if time.Now().After(deadline) {
			db.wmu.Unlock()
			t.Fatal("Produce never began adding its block")
		}
		time.Sleep(time.Millisecond)
	}
	counted := make(chan bool, 1)
	go func() { counted <- n.chain.Counted(c.Credit.ID()) }()
	select {
	case got := <-counted:
		if got {
			t.Fatal("the credit counts before its block is stored")
		}
	case <-time.After(30 * time.Second):
		db.wmu.Unlock()
		<-produced
		t.Fatal("Counted waited for the block's store")
	}
	db.wmu.Unlock()
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	if !n.chain.Counted(c.Credit.ID()) {
		t.Fatal("the credit does not count once its block is stored")
	}
}
