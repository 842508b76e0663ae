package testnet

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/sharechain"
)

// TestPaidCompletion: on a network that requires payment (spec/12 §2.6),
// a client whose wallet fills itself at an authority's faucet pays each
// compute hop inside its own onion layer and gets its completion; each
// compute relay of the circuit redeemed the credits into its spent set and
// put them in share blocks of its own chain (sharechain.db in its data
// directory). A block is paid once another is on top of it (the testnet's
// pplns-maturity is 1), so the client completes until both relays have a
// matured block; then the payouts split the matured value exactly (integer
// check: paid + carried = value, all of it to the one relay on the chain:
// relays do not yet exchange blocks, see spec/12 §5.4).
func TestPaidCompletion(t *testing.T) {
	n := startNetwork(t, Spec{Mode: "anonymous", Replicas: 1, Parties: 2, Economy: true})
	api, _, _ := n.ClientAddrs()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const tokens = 12
	got, err := complete(ctx, api, e2ePrompt, tokens)
	if err != nil {
		t.Fatal(err)
	}
	if got == "" {
		t.Fatal("empty completion")
	}
	circs, err := ClientCircuits(ctx, n)
	if err != nil || len(circs) == 0 {
		t.Fatalf("circuits: %v", err)
	}
	hops := circs[len(circs)-1]
	for _, h := range hops[1:] {
		var node *Node
		for _, nd := range n.Nodes {
			if nd.Fingerprint == h.Fingerprint {
				node = nd
			}
		}
		fp, err := keys.ParseFingerprint(h.Fingerprint)
		if err != nil {
			t.Fatal(err)
		}
		// Blocks come every 2 s; wait for the one carrying the payments.
		var ch *sharechain.Chain
		deadline := time.Now().Add(60 * time.Second)
		for {
			ch = relayChain(t, filepath.Join(node.Dir, "data"))
			var units uint64
			for _, w := range ch.Work() {
				if w.Relay == fp {
					units = w.Units
				}
			}
			// The prompt plus every generated token but the last ran here.
			if units >= uint64(len(strings.Fields(e2ePrompt))) && ch.Payouts().Matured > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no matured share block with its paid work after 60 s (work %v)", node.Name, ch.Work())
			}
			// Another paid completion makes another block.
			time.Sleep(2 * time.Second)
			if _, err := complete(ctx, api, e2ePrompt, 2); err != nil {
				t.Fatal(err)
			}
		}
		s := ch.Payouts()
		if s.Value == 0 || s.Paid+s.Carried != s.Value {
			t.Fatalf("%s: value %d, paid %d, carried %d", node.Name, s.Value, s.Paid, s.Carried)
		}
		var weights []sharechain.Weight
		for _, r := range s.Relays {
			weights = append(weights, sharechain.Weight{Relay: r.Relay, Shares: r.Shares})
		}
		parts, err := sharechain.Split(s.Paid, weights)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range s.Relays {
			if r.Amount != parts[i] {
				t.Errorf("%s: relay %s paid %d, its exact share of %d is %d", node.Name, r.Relay, r.Amount, s.Paid, parts[i])
			}
		}
		if len(s.Relays) == 0 || s.Relays[0].Relay != fp {
			t.Errorf("%s: payouts %+v, want this relay's", node.Name, s.Relays)
		}
		t.Logf("%s: height %d, value %d, paid %d, work %v", node.Name, s.TipHeight, s.Value, s.Paid, ch.Work())
	}
}

// relayChain loads the share-chain a relay stored, with the mint keys it
// recorded.
func relayChain(t *testing.T, dir string) *sharechain.Chain {
	t.Helper()
	db, err := sharechain.OpenDB(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ks, err := db.LoadKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	p := sharechain.DefaultParams(sharechain.DefaultNetwork)
	p.Window, p.Maturity = 50, 1 // the testnet's pplns-window and pplns-maturity
	ch, err := sharechain.NewChain(context.Background(), p, ks, db)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}
