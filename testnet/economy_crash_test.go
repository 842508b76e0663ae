package testnet

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/sharechain"
)

// TestShareChainCrash: on a paying network, while a client pays for
// completions, a compute relay and an authority are killed (SIGKILL, both
// at once) three times, at different points of the relay's 2 s block cycle
// (just after it stored a block, in the middle, just before the next), and
// restarted on the same data directories. After each kill, before the
// restart, the stores must pass integrity_check and reload (every stored
// block re-validated); every credit id the relay had acknowledged (in its
// spent set before the kill) must still be spent, and be either in a
// stored block or pending (spec 12 §3.3, §8); no pending entry may also be
// in a block of the relay's own (it would be carried twice). After the
// last restart the load stops; then the relay's pending entries must all
// reach its best chain, every credit it redeemed must count there, no
// credit may count twice on either chain, the authority's spent set must
// hold every credit of its best chain, and the authority's best tip must
// become the relay's.
func TestShareChainCrash(t *testing.T) {
	n := startNetwork(t, Spec{Mode: "anonymous", Replicas: 1, Economy: true})
	api, _, _ := n.ClientAddrs()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if got, err := complete(ctx, api, e2ePrompt, 4); err != nil || got == "" {
		t.Fatalf("completion %q: %v", got, err)
	}
	relay, auth := n.Node("s1-1"), n.Node("auth2")
	relayDir, authDir := filepath.Join(relay.Dir, "data"), filepath.Join(auth.Dir, "data")
	fp, err := keys.ParseFingerprint(relay.Fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for loadCtx.Err() == nil {
			if _, err := complete(loadCtx, api, e2ePrompt, 4); err == nil {
				ok.Add(1)
			} else {
				failed.Add(1)
				waitCtx(loadCtx, 300*time.Millisecond)
			}
		}
	}()
	for round, delay := range []time.Duration{10 * time.Millisecond, time.Second, 1950 * time.Millisecond} {
		// Kill only while paid completions go through the relay again.
		okBefore := ok.Load()
		for deadline := time.Now().Add(60 * time.Second); ok.Load() < okBefore+3; time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: %d completions in 60 s (%d failed)", round, ok.Load()-okBefore, failed.Load())
			}
		}
		if err := waitLogLine(ctx, relay, "share block produced", 60*time.Second); err != nil {
			t.Fatalf("round %d: %v (completions %d ok, %d failed)", round, err, ok.Load(), failed.Load())
		}
		time.Sleep(delay)
		acked := spentSet(t, relayDir)
		if err := n.Kill(relay.Name); err != nil {
			t.Fatal(err)
		}
		if err := n.Kill(auth.Name); err != nil {
			t.Fatal(err)
		}
		pending := checkRelayStore(t, round, relayDir, fp, acked)
		checkAuthStore(t, round, authDir)
		t.Logf("round %d: killed %s and %s %v after a block: %d ids acknowledged, %d entries pending; completions since the last restart %d",
			round, relay.Name, auth.Name, delay, len(acked), pending, ok.Load()-okBefore)
		if err := n.Restart(ctx, relay.Name); err != nil {
			t.Fatal(err)
		}
		if err := n.Restart(ctx, auth.Name); err != nil {
			t.Fatal(err)
		}
	}
	// Paid work resumes after the last restart.
	for okBefore, deadline := ok.Load(), time.Now().Add(60*time.Second); ok.Load() < okBefore+3; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after the last restart: %d completions in 60 s", ok.Load()-okBefore)
		}
	}
	if err := waitLogLine(ctx, relay, "share block produced", 60*time.Second); err != nil {
		t.Fatalf("after the last restart: %v", err)
	}
	stopLoad()
	wg.Wait()
	t.Logf("completions: %d ok, %d failed", ok.Load(), failed.Load())

	var last string
	for deadline := time.Now().Add(60 * time.Second); ; {
		last = settled(t, relayDir, authDir, fp)
		if last == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not settled 60 s after the load stopped: %s", last)
		}
		time.Sleep(2 * time.Second)
	}
}

// waitLogLine waits for a line containing s that node writes to its
// stderr.log from now on.
func waitLogLine(ctx context.Context, node *Node, s string, timeout time.Duration) error {
	path := filepath.Join(node.Dir, "stderr.log")
	var off int64
	if st, err := os.Stat(path); err == nil {
		off = st.Size()
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if f, err := os.Open(path); err == nil {
			f.Seek(off, io.SeekStart)
			b, _ := io.ReadAll(f)
			f.Close()
			if bytes.Contains(b, []byte(s)) {
				return nil
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("%s logged no %q within %s", node.Name, s, timeout)
}

// openStore opens a node's share-chain store and chain (testnet parameters).
func openChainStore(t *testing.T, dir string) (*sharechain.DB, *sharechain.Chain) {
	t.Helper()
	db, err := sharechain.OpenDB(dir)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := db.LoadKeys(context.Background())
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	p := sharechain.DefaultParams(sharechain.NetworkName(TestnetChainID))
	p.Window, p.Maturity = 50, 1 // the testnet's pplns-window and pplns-maturity
	ch, err := sharechain.NewChain(context.Background(), p, ks, db)
	if err != nil {
		db.Close()
		t.Fatalf("%s: the stored chain does not reload: %v", dir, err)
	}
	return db, ch
}

// spentSet reads a node's spent set.
func spentSet(t *testing.T, dir string) map[sharechain.CreditID]bool {
	t.Helper()
	db, err := sharechain.OpenDB(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ids, err := db.SpentIDs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[sharechain.CreditID]bool{}
	for _, id := range ids {
		out[id] = true
	}
	return out
}

// checkRelayStore checks a killed relay's store and returns how many
// entries it holds pending.
func checkRelayStore(t *testing.T, round int, dir string, fp keys.Fingerprint, acked map[sharechain.CreditID]bool) int {
	t.Helper()
	ctx := context.Background()
	db, ch := openChainStore(t, dir)
	defer db.Close()
	if err := db.IntegrityCheck(ctx); err != nil {
		t.Fatalf("round %d: relay store: %v", round, err)
	}
	spent := spentSet(t, dir)
	for id := range acked {
		if !spent[id] {
			t.Fatalf("round %d: acknowledged redemption %x lost from the spent set", round, id[:8])
		}
	}
	inBlock, inOwn := map[sharechain.CreditID]bool{}, map[sharechain.CreditID]bool{}
	for _, b := range ch.Blocks() {
		for _, e := range b.Entries {
			inBlock[e.Credit.ID()] = true
			if b.Fingerprint() == fp {
				inOwn[e.Credit.ID()] = true
			}
		}
	}
	es, err := db.LoadPending(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pending := map[sharechain.CreditID]bool{}
	for _, e := range es {
		id := e.Credit.ID()
		if inOwn[id] {
			t.Fatalf("round %d: credit %x both pending and in a stored block of the relay's own", round, id[:8])
		}
		if !spent[id] {
			t.Fatalf("round %d: pending credit %x not in the spent set", round, id[:8])
		}
		pending[id] = true
	}
	for id := range spent {
		if !inBlock[id] && !pending[id] {
			t.Fatalf("round %d: spent credit %x (of %d) is neither in a stored block nor pending: its redemption is lost", round, id[:8], len(spent))
		}
	}
	return len(pending)
}

// checkAuthStore checks a killed authority's store.
func checkAuthStore(t *testing.T, round int, dir string) {
	t.Helper()
	db, _ := openChainStore(t, dir)
	defer db.Close()
	if err := db.IntegrityCheck(context.Background()); err != nil {
		t.Fatalf("round %d: authority store: %v", round, err)
	}
}

// settled returns "" once the relay and the authority agree and every
// credit the relay redeemed counts on its best chain, or what is missing.
// Errors that cannot heal fail the test.
func settled(t *testing.T, relayDir, authDir string, fp keys.Fingerprint) string {
	t.Helper()
	ctx := context.Background()
	rdb, rch := openChainStore(t, relayDir)
	defer rdb.Close()
	adb, ach := openChainStore(t, authDir)
	defer adb.Close()
	once(t, "relay", rch)
	once(t, "authority", ach)
	for _, b := range ach.MainChain() {
		for _, e := range b.Entries {
			if ok, err := adb.Spent(ctx, e.Credit.ID()); err != nil || !ok {
				return fmt.Sprintf("a credit of the authority's block %d is not in its spent set", b.Height)
			}
		}
	}
	if k, err := rdb.PendingCount(ctx); err != nil || k != 0 {
		return fmt.Sprintf("%d entries pending at the relay (%v)", k, err)
	}
	// A credit of another relay's block the relay marked spent; every
	// other id in its spent set is one it redeemed.
	others := map[sharechain.CreditID]bool{}
	for _, b := range rch.Blocks() {
		if b.Fingerprint() != fp {
			for _, e := range b.Entries {
				others[e.Credit.ID()] = true
			}
		}
	}
	ids, err := rdb.SpentIDs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	missing := 0
	for _, id := range ids {
		if !others[id] && !rch.Counted(id) {
			missing++
		}
	}
	if missing > 0 {
		return fmt.Sprintf("%d of the relay's %d redemptions count nowhere on its best chain", missing, len(ids))
	}
	rt, at := rch.Tip(), ach.Tip()
	if rt == nil || at == nil || rt.ID() != at.ID() {
		return fmt.Sprintf("tips differ: relay %v, authority %v", tipHeight(rt), tipHeight(at))
	}
	if s := ach.Payouts(); s.Paid+s.Carried != s.Value {
		t.Fatalf("authority payouts: value %d, paid %d, carried %d", s.Value, s.Paid, s.Carried)
	}
	t.Logf("settled: tip %d, %d redemptions at the relay", rt.Height, len(ids))
	return ""
}

func tipHeight(b *sharechain.Block) any {
	if b == nil {
		return "none"
	}
	return b.Height
}

// once fails the test if a credit counts twice on ch's best chain.
func once(t *testing.T, who string, ch *sharechain.Chain) {
	t.Helper()
	seen := map[sharechain.CreditID]uint64{}
	for _, b := range ch.MainChain() {
		ids := []sharechain.CreditID{}
		for _, e := range b.Entries {
			ids = append(ids, e.Credit.ID())
		}
		for _, uid := range b.Uncles {
			u, ok := ch.Block(uid)
			if !ok {
				t.Fatalf("%s: uncle of block %d not stored", who, b.Height)
			}
			for _, e := range u.Entries {
				ids = append(ids, e.Credit.ID())
			}
		}
		for _, id := range ids {
			if h, dup := seen[id]; dup {
				t.Fatalf("%s: credit %x counts at heights %d and %d", who, id[:8], h, b.Height)
			}
			seen[id] = b.Height
		}
	}
}
