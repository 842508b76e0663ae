package testnet

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/sharechain"
)

var (
	cheatClientOnce sync.Once
	cheatClientErr  error
)

// buildCheatClient builds the double-spending client once per test
// process.
func buildCheatClient(t *testing.T) {
	t.Helper()
	cheatClientOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cheatClientErr = BuildCheatClient(ctx, binDir)
	})
	if cheatClientErr != nil {
		t.Fatal(cheatClientErr)
	}
}

// TestDoubleSpendRejectedProcesses: the real-process form of
// sharechain's TestDoubleSpendRejected (spec/12 §3.3, §3.4). On a paying
// network the client runs the fault-injection build (client/paycheat.go):
// it pays its circuit's first compute relay A with some credits, pays the
// second compute relay B with the same credits again in the same breath
// (re-signed for B: the credits presented at two relays at once, before
// either relay's block can carry them), and in a later PAY presents them
// to A once more. Asserted:
//   - A refuses the later re-presentation as already spent (its
//     unfed_sharechain_double_spends_total counts it);
//   - once blocks carry the credits and A's, B's and an authority's best
//     chains agree on them, each credit is counted in exactly one block of
//     the best chain, uncles included (spec 12 §3.4: the losing relay's
//     block cannot be on the best chain with it, nor be an uncle), made by
//     A or B, and the same block on all three chains.
//
// Mutation: UNFED_TEST_BREAK_SPENT=1 runs the compute relays with a hook
// that acknowledges spent credits; the refusal check then fails. Were a
// second redemption to count (the relays' spent sets or the
// chain's once-only rule broken), the credit would be in two blocks of
// the agreed best chain (main or uncle) and the count check fails; were
// A's spent set not consulted, A's double-spend counter stays 0 and the
// refusal check fails.
func TestDoubleSpendRejectedProcesses(t *testing.T) { doubleSpendProcesses(t, false) }

// TestDoubleSpendCompetingBlocks: as TestDoubleSpendRejectedProcesses, with
// the compute relays partitioned from every other node's blocks (the
// unfedcheat build's UNFED_CHEAT_DEAF_WHILE: they drop the blocks peers
// send) from before the double spend until both A and B have put the
// credits in a block of their own. Then the partition heals and the chains must settle on one
// of the two: each credit counted in exactly one block of A's, B's and the
// authority's agreed best chain, uncles included, while both competing
// blocks stay stored (spec 12 §3.4: the losing block is neither on the
// best chain with the winner nor its uncle).
//
// Mutation: UNFED_TEST_BREAK_UNCLES=1 runs the compute relays with a chain
// that lets an uncle carry spent credits; the test then fails (the losing
// block counted as an uncle, or chains that never agree).
func TestDoubleSpendCompetingBlocks(t *testing.T) { doubleSpendProcesses(t, true) }

func doubleSpendProcesses(t *testing.T, competing bool) {
	buildCheatClient(t)
	// The mutation: with UNFED_TEST_BREAK_SPENT=1 the compute relays run
	// the fault-injection build that acknowledges spent credits
	// (sharechain/cheat.go), and this test must fail.
	broken := os.Getenv("UNFED_TEST_BREAK_SPENT") == "1"
	// With UNFED_TEST_BREAK_UNCLES=1 the compute relays of the
	// competing-blocks case let an uncle carry spent credits, so the
	// losing block may count beside the winner: that test must fail.
	brokenUncles := os.Getenv("UNFED_TEST_BREAK_UNCLES") == "1"
	if broken || competing {
		buildCheat(t)
	}
	recPath := filepath.Join(t.TempDir(), "doublespend.json")
	deaf := filepath.Join(t.TempDir(), "deaf")
	n := startNetworkPatched(t, Spec{Mode: "anonymous", Replicas: 1, Parties: 2, Economy: true}, func(node *Node, _ map[string]any) {
		switch {
		case node.Role == "client":
			node.Binary = CheatClientBinary
			node.Env = []string{"UNFED_CHEAT_DOUBLESPEND=" + recPath}
		case node.Role == "compute" && (broken || competing):
			node.Binary = CheatBinary
			if broken {
				node.Env = append(node.Env, "UNFED_CHEAT_ACCEPTSPENT=1")
			}
			if competing {
				node.Env = append(node.Env, "UNFED_CHEAT_DEAF_WHILE="+deaf)
			}
			if competing && brokenUncles {
				node.Env = append(node.Env, "UNFED_CHEAT_UNCLESPEND=1")
			}
		}
	})
	api, _, _ := n.ClientAddrs()
	limit := 2 * time.Minute
	if competing {
		limit = 3 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	if competing {
		// The partition begins once the network serves anonymous
		// circuits (the relays' stakes on every chain) and before the
		// first completion, whose payment the client double-spends.
		if _, err := modelForMode(ctx, api, "anonymous"); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(deaf, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	// Completions until the client has presented the credits at both
	// relays and again at the first. The re-presentation ends its session
	// (payment-refused); the client may retry, so errors are only logged.
	var rec doubleSpendRecord
	for runs := 0; ; runs++ {
		if b, err := os.ReadFile(recPath); err == nil {
			if err := json.Unmarshal(b, &rec); err != nil {
				t.Fatalf("record %s: %v", b, err)
			}
			if rec.Again {
				break
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("after %d completions the client has not double-spent: %+v", runs, rec)
		}
		if _, err := complete(ctx, api, e2ePrompt, 4); err != nil {
			t.Logf("completion %d: %v", runs, err)
			waitCtx(ctx, time.Second)
		}
	}
	if len(rec.Credits) == 0 || rec.First == rec.Second || rec.Second == "" {
		t.Fatalf("record %+v", rec)
	}
	t.Logf("credits %v paid to A=%s, then to B=%s, then to A again (%.1f s)", rec.Credits, rec.First, rec.Second, time.Since(start).Seconds())
	byFP := map[string]*Node{}
	for _, nd := range n.Nodes {
		byFP[nd.Fingerprint] = nd
	}
	a, b := byFP[rec.First], byFP[rec.Second]
	if a == nil || b == nil || a.Role != "compute" || b.Role != "compute" {
		t.Fatalf("relays of the double spend: %+v, %+v", a, b)
	}
	// A refuses the later re-presentation: its spent set holds the
	// credits.
	for deadline := time.Now().Add(20 * time.Second); ; {
		m, err := Metrics(ctx, a)
		if err == nil && m["unfed_sharechain_double_spends_total"] >= 1 {
			// B refusing none means it acknowledged the credits too (its
			// chain had not counted them yet): both relays redeemed them.
			t.Logf("A refused %v re-presentations; B refused %v", m["unfed_sharechain_double_spends_total"], metric(ctx, b, "unfed_sharechain_double_spends_total"))
			break
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			t.Fatalf("A (%s) did not refuse the re-presented credits as spent: metrics err %v, double spends %v", a.Name, err, m["unfed_sharechain_double_spends_total"])
		}
		waitCtx(ctx, 500*time.Millisecond)
	}
	ids := map[sharechain.CreditID]bool{}
	for _, s := range rec.Credits {
		var id sharechain.CreditID
		if raw, err := hex.DecodeString(s); err != nil || len(raw) != len(id) {
			t.Fatalf("credit id %q", s)
		} else {
			copy(id[:], raw)
		}
		ids[id] = true
	}
	fpA, _ := keys.ParseFingerprint(a.Fingerprint)
	fpB, _ := keys.ParseFingerprint(b.Fingerprint)
	dirs := []string{filepath.Join(a.Dir, "data"), filepath.Join(b.Dir, "data"), filepath.Join(n.Node("auth1").Dir, "data")}
	if competing {
		// Partitioned, A and B each put the credits in a block of their
		// own; then the partition heals.
		for {
			ownA := ownBlockCarrying(t, dirs[0], fpA, ids)
			ownB := ownBlockCarrying(t, dirs[1], fpB, ids)
			if ownA != nil && ownB != nil {
				idA, idB := ownA.ID(), ownB.ID()
				t.Logf("competing blocks: A's %x at height %d, B's %x at height %d", idA[:6], ownA.Height, idB[:6], ownB.Height)
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("partitioned, A (%v) and B (%v) did not both put the credits in a block of their own", ownA != nil, ownB != nil)
			}
			if _, err := complete(ctx, api, e2ePrompt, 2); err != nil {
				t.Logf("completion: %v", err)
			}
			waitCtx(ctx, time.Second)
		}
		if err := os.Remove(deaf); err != nil {
			t.Fatal(err)
		}
	}
	// Honest paid completions keep blocks coming until every chain counts
	// every credit, and the three agree on the block that does.
	for {
		agree := true
		var counting map[sharechain.CreditID]sharechain.BlockID
		for i, dir := range dirs {
			ch, _ := relayChain(t, dir)
			got, stored := countCredits(t, ch, ids)
			for id := range ids {
				if c := len(got[id]); c > 1 {
					t.Fatalf("chain %d of %s counts credit %x in %d blocks of its best chain (uncles included): %v", i, dir, id, c, got[id])
				} else if c == 0 {
					agree = false
				}
			}
			if !agree {
				break
			}
			m := map[sharechain.CreditID]sharechain.BlockID{}
			for id := range ids {
				blk := got[id][0]
				if fp := blk.Fingerprint(); fp != fpA && fp != fpB {
					t.Fatalf("credit %x counted in a block of %s, neither A nor B", id, fp)
				}
				m[id] = blk.ID()
			}
			if counting == nil {
				counting = m
			} else {
				for id := range ids {
					agree = agree && counting[id] == m[id]
				}
			}
			if agree && i == len(dirs)-1 {
				for id := range ids {
					blk := got[id][0]
					who := "A"
					if blk.Fingerprint() == fpB {
						who = "B"
					}
					t.Logf("credit %x: counted once, in %s's block at height %d; %d stored blocks carry it", id[:6], who, blk.Height, stored[id])
				}
			}
		}
		if agree {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("A's, B's and the authority's best chains do not all count the double-spent credits in one agreed block within %v", limit)
		}
		if _, err := complete(ctx, api, e2ePrompt, 2); err != nil {
			t.Logf("completion: %v", err)
		}
		waitCtx(ctx, 2*time.Second)
	}
	if competing {
		// Both competing blocks are still known where the chains settled:
		// the loser was stored, not counted.
		ch, _ := relayChain(t, dirs[2])
		_, stored := countCredits(t, ch, ids)
		for id := range ids {
			if stored[id] < 2 {
				t.Fatalf("the authority stores %d blocks carrying credit %x, want both competing blocks", stored[id], id[:6])
			}
		}
	}
	t.Logf("done in %.1f s", time.Since(start).Seconds())
}

// ownBlockCarrying returns a block that relay fp made, stored in the chain
// under dir, carrying one of the credits ids, or nil.
func ownBlockCarrying(t *testing.T, dir string, fp keys.Fingerprint, ids map[sharechain.CreditID]bool) *sharechain.Block {
	t.Helper()
	ch, _ := relayChain(t, dir)
	for _, b := range ch.Blocks() {
		if b.Fingerprint() != fp {
			continue
		}
		for _, e := range b.Entries {
			if ids[e.Credit.ID()] {
				return b
			}
		}
	}
	return nil
}

// countCredits returns, for each credit of ids, the blocks of ch's best
// chain and their uncles that carry it, and how many stored blocks (on
// the best chain or not) carry it.
func countCredits(t *testing.T, ch *sharechain.Chain, ids map[sharechain.CreditID]bool) (map[sharechain.CreditID][]*sharechain.Block, map[sharechain.CreditID]int) {
	t.Helper()
	on := map[sharechain.CreditID][]*sharechain.Block{}
	see := func(b *sharechain.Block) {
		for _, e := range b.Entries {
			if id := e.Credit.ID(); ids[id] {
				on[id] = append(on[id], b)
			}
		}
	}
	for _, b := range ch.MainChain() {
		see(b)
		for _, uid := range b.Uncles {
			u, ok := ch.Block(uid)
			if !ok {
				t.Fatal("uncle not stored")
			}
			see(u)
		}
	}
	stored := map[sharechain.CreditID]int{}
	for _, b := range ch.Blocks() {
		for _, e := range b.Entries {
			if id := e.Credit.ID(); ids[id] {
				stored[id]++
			}
		}
	}
	return on, stored
}

// doubleSpendRecord is the JSON the double-spending client writes
// (client/paycheat.go, DoubleSpendRecord).
type doubleSpendRecord struct {
	Credits       []string
	First, Second string
	Again         bool
}

// metric reads one metric of node, or -1.
func metric(ctx context.Context, node *Node, name string) float64 {
	m, err := Metrics(ctx, node)
	if err != nil {
		return -1
	}
	if v, ok := m[name]; ok {
		return v
	}
	return -1
}
