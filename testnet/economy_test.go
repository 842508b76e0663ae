package testnet

import (
	"bytes"
	"context"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/sharechain"
)

// TestPaidCompletion: on a network that requires payment (spec/12 §2.6),
// a client whose wallet fills itself at an authority's faucet pays each
// compute hop inside its own onion layer and gets its completions; each
// compute relay of the circuit redeems the credits, puts them in share
// blocks and posts them to the authorities, which follow the chain, and
// pulls the others' blocks so that one chain carries both relays' shares.
// The payouts an authority's chain computes are checked against a
// reference computed here from the blocks alone (spec 12 §6: window
// shares with the uncle penalty, the exact split of each matured block's
// value), integer for integer, and every unit paid is paid out or carried.
func TestPaidCompletion(t *testing.T) {
	n := startNetwork(t, Spec{Mode: "anonymous", Replicas: 1, Parties: 2, Economy: true})
	api, _, _ := n.ClientAddrs()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if got, err := complete(ctx, api, e2ePrompt, 12); err != nil || got == "" {
		t.Fatalf("completion %q: %v", got, err)
	}
	circs, err := ClientCircuits(ctx, n)
	if err != nil || len(circs) == 0 {
		t.Fatalf("circuits: %v", err)
	}
	var relays []keys.Fingerprint
	for _, h := range circs[len(circs)-1][1:] {
		fp, err := keys.ParseFingerprint(h.Fingerprint)
		if err != nil {
			t.Fatal(err)
		}
		relays = append(relays, fp)
	}
	authDir := filepath.Join(n.Node("auth1").Dir, "data")
	// Blocks come every 2 s; more paid completions make more blocks, until
	// both relays have shares in matured blocks of the authority's chain.
	deadline := time.Now().Add(90 * time.Second)
	var ch *sharechain.Chain
	var ks *sharechain.KeySet
	for {
		time.Sleep(3 * time.Second)
		ch, ks = relayChain(t, authDir)
		if bothMatured(ch, relays) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the authority's chain has no matured blocks of both relays after 90 s: work %v, %+v", ch.Work(), ch.Payouts())
		}
		if _, err := complete(ctx, api, e2ePrompt, 2); err != nil {
			t.Fatal(err)
		}
	}
	s := ch.Payouts()
	if s.Value == 0 || s.Paid+s.Carried != s.Value {
		t.Fatalf("value %d, paid %d, carried %d", s.Value, s.Paid, s.Carried)
	}
	want := referencePayouts(t, ch, ks, true)
	for _, r := range s.Relays {
		if r.Amount != want[r.Relay] {
			t.Errorf("relay %s paid %d, the reference says %d", r.Relay, r.Amount, want[r.Relay])
		}
		delete(want, r.Relay)
	}
	for fp, a := range want {
		if a != 0 {
			t.Errorf("relay %s: reference payout %d, none on the chain", fp, a)
		}
	}
	t.Logf("authority chain: tip %d, matured %d, value %d, paid %d, carried %d, payouts %+v", s.TipHeight, s.Matured, s.Value, s.Paid, s.Carried, s.Relays)
	// A confidential completion pays each stage's dealer per position
	// dealt and its two parties per position run: the dealers' and the
	// parties' paid work reaches the authority's chain.
	model, err := modelForMode(ctx, api, "confidential")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := completeModel(ctx, api, model, e2ePrompt, 4); err != nil || got == "" {
		t.Fatalf("confidential completion %q: %v", got, err)
	}
	dealers := map[keys.Fingerprint]bool{}
	for _, nd := range n.Nodes {
		if nd.Role == "dealer" || nd.Role == "party" {
			fp, _ := keys.ParseFingerprint(nd.Fingerprint)
			dealers[fp] = true
		}
	}
	// A dealer's block may lose the fork choice; it carries the entries
	// again once the chain has grown past the uncle depth (spec 12 §4.2):
	// more paid completions grow it.
	for deadline := time.Now().Add(60 * time.Second); ; {
		time.Sleep(2 * time.Second)
		paid := 0
		ch, _ = relayChain(t, authDir)
		for _, w := range ch.Work() {
			if dealers[w.Relay] && w.Units > 0 {
				paid++
			}
		}
		if paid == len(dealers) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d dealers' and parties' paid work on the authority's chain after 60 s: %v", paid, len(dealers), ch.Work())
		}
		// Confidential ones: they pay the dealers and parties again.
		if _, err := completeModel(ctx, api, model, e2ePrompt, 2); err != nil {
			t.Fatal(err)
		}
	}
	checkUnlinkable(t, n)
	// The explorer's CLI reads the chain the running authority follows.
	var out bytes.Buffer
	if err := sharechain.Payouts(ctx, []string{"--data-dir", authDir, "--window", "50", "--maturity", "1"}, &out, &out); err != nil {
		t.Fatalf("unfed sharechain payouts: %v\n%s", err, out.String())
	}
	for _, fp := range relays {
		if !strings.Contains(out.String(), fp.String()) {
			t.Errorf("unfed sharechain payouts does not list %s:\n%s", fp, out.String())
		}
	}
}

// bothMatured reports whether every relay produced a matured block of
// ch's best chain carrying paid work (not only stake).
func bothMatured(ch *sharechain.Chain, relays []keys.Fingerprint) bool {
	s := ch.Payouts()
	for _, fp := range relays {
		ok := false
		for _, b := range ch.MainChain() {
			if b.Fingerprint() == fp && b.Height <= s.Matured && b.Units() > 0 {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// referencePayouts recomputes spec 12 §6 from the best chain's blocks: a
// block's work is the denominations of its work entries, its value its
// work plus its uncles'; each block's producer gets its work as shares and
// the penalty cut of each uncle's work, the uncle's producer the rest; the
// matured block h's value (plus carry) is split exactly over the shares of
// the blocks max(1, h−N+1)..h, without those of a relay slashed at height s
// when s ≤ h + V (spec 12 §7.2; not applied when slashes is false).
func referencePayouts(t *testing.T, ch *sharechain.Chain, ks *sharechain.KeySet, slashes bool) map[keys.Fingerprint]uint64 {
	t.Helper()
	p := ch.Params()
	main := ch.MainChain()
	work := func(b *sharechain.Block) uint64 {
		var w uint64
		for _, e := range b.Entries {
			if e.Units > 0 {
				k, ok := ks.Lookup(e.Credit.KeyID)
				if !ok {
					t.Fatal("a block's credit has no known key")
				}
				w += k.Denom
			}
		}
		return w
	}
	type contrib struct {
		fp keys.Fingerprint
		w  uint64
	}
	shares := make([][]contrib, len(main))
	value := make([]uint64, len(main))
	for i, b := range main {
		value[i] = work(b)
		shares[i] = append(shares[i], contrib{b.Fingerprint(), work(b)})
		for _, uid := range b.Uncles {
			u, ok := ch.Block(uid)
			if !ok {
				t.Fatal("uncle not stored")
			}
			wu := work(u)
			keep := wu * (100 - p.UnclePenalty) / 100
			shares[i] = append(shares[i], contrib{u.Fingerprint(), keep}, contrib{b.Fingerprint(), wu - keep})
			value[i] += wu
		}
	}
	out := map[keys.Fingerprint]uint64{}
	tip := main[len(main)-1].Height
	var carry uint64
	for i, b := range main {
		if b.Height+uint64(p.Maturity) > tip {
			break
		}
		win := map[keys.Fingerprint]uint64{}
		for j := max(0, i-p.Window+1); j <= i; j++ {
			for _, c := range shares[j] {
				win[c.fp] += c.w
			}
		}
		var ws []sharechain.Weight
		for fp, w := range win {
			if s, ok := ch.SlashedAt(fp); slashes && ok && s <= b.Height+uint64(p.Maturity) {
				continue
			}
			if w > 0 {
				ws = append(ws, sharechain.Weight{Relay: fp, Shares: w})
			}
		}
		sort.Slice(ws, func(a, b int) bool { return ws[a].Relay.String() < ws[b].Relay.String() })
		pool := value[i] + carry
		if len(ws) == 0 {
			carry = pool
			continue
		}
		parts, err := sharechain.Split(pool, ws)
		if err != nil {
			t.Fatal(err)
		}
		carry = 0
		for k, w := range ws {
			out[w.Relay] += parts[k]
		}
	}
	return out
}

// relayChain loads the share-chain a node stored, with the mint keys it
// recorded and the testnet's parameters.
func relayChain(t *testing.T, dir string) (*sharechain.Chain, *sharechain.KeySet) {
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
	p := sharechain.DefaultParams(sharechain.NetworkName(TestnetChainID))
	p.Window, p.Maturity = 50, 1 // the testnet's pplns-window and pplns-maturity
	ch, err := sharechain.NewChain(context.Background(), p, ks, db)
	if err != nil {
		t.Fatal(err)
	}
	return ch, ks
}

// TestSlashing: on a paying network, one compute relay runs the
// fault-injection build and corrupts every output it computes; it locked
// stake like every relay, and its paid work earned shares. The verifier
// proves the fraud to the authorities, which flag it BadCompute and record
// the proof on their share-chain: its stake counts 0 (burned, spec 12
// §7.3) and its shares in every block not yet paid when the proof arrived
// are void (§7.2), so its payout is less than it would have been; the
// authority's payouts equal the reference with that rule, integer for
// integer, and nothing is lost (paid + carried = value).
func TestSlashing(t *testing.T) {
	buildCheat(t)
	interval := 4 * time.Second
	n := startNetworkPatched(t, Spec{Mode: "anonymous", Replicas: 2, Verifiers: 1, VerifyFraction: 250,
		TicketDelay: -1, Cheater: "s1-1", CheatFraction: 1, Interval: interval, Economy: true}, nil)
	api, _, _ := n.ClientAddrs()
	fp, err := keys.ParseFingerprint(n.Node("s1-1").Fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	authDir := filepath.Join(n.Node("auth1").Dir, "data")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	waitVerifierListed(ctx, t, n)
	watch := watchBadCompute(ctx, n, fp)
	// Paid completions until the cheater is flagged; its stake and shares
	// are on the authority's chain before the proof.
	staked := false
	deadline := time.Now().Add(2 * time.Minute)
	for runs := 0; watch.at().IsZero(); runs++ {
		if ctx.Err() != nil || time.Now().After(deadline) {
			t.Fatalf("not flagged after %d completions", runs)
		}
		waitCtx(ctx, 250*time.Millisecond)
		if _, err := complete(ctx, api, e2ePrompt, 16); err != nil {
			t.Fatal(err)
		}
		ch, _ := relayChain(t, authDir)
		if _, slashed := ch.SlashedAt(fp); !slashed {
			staked = staked || ch.Stake(fp) >= 10
		}
	}
	if !staked {
		t.Fatal("the cheater had no stake on the chain before the proof")
	}
	// The proof reached the authority's chain; more paid completions (now
	// avoiding the cheater) mature blocks whose windows hold its shares.
	var ch *sharechain.Chain
	var ks *sharechain.KeySet
	var at uint64
	for deadline := time.Now().Add(90 * time.Second); ; {
		ch, ks = relayChain(t, authDir)
		h, ok := ch.SlashedAt(fp)
		worked := false // the cheater's paid work (before the flag) is on the chain
		for _, w := range ch.Work() {
			worked = worked || w.Relay == fp && w.Units > 0
		}
		if ok && worked && ch.Payouts().Matured > h+2 {
			at = h
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slashed %v at %d, cheater's work on the chain %v; chain %+v", ok, h, worked, ch.Payouts())
		}
		if _, err := complete(ctx, api, e2ePrompt, 4); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
	}
	if s := ch.Stake(fp); s != 0 {
		t.Errorf("the slashed relay's stake counts %d, want 0 (burned)", s)
	}
	s := ch.Payouts()
	if s.Paid+s.Carried != s.Value {
		t.Fatalf("value %d, paid %d, carried %d", s.Value, s.Paid, s.Carried)
	}
	want := referencePayouts(t, ch, ks, true)
	unslashed := referencePayouts(t, ch, ks, false)
	var got uint64
	for _, r := range s.Relays {
		if r.Amount != want[r.Relay] {
			t.Errorf("relay %s paid %d, the reference says %d", r.Relay, r.Amount, want[r.Relay])
		}
		if r.Relay == fp {
			got = r.Amount
		}
	}
	if got >= unslashed[fp] {
		t.Errorf("the slashed relay is paid %d, %d without the slash: its unpaid shares were not voided", got, unslashed[fp])
	}
	t.Logf("slashed at height %d; tip %d, matured %d; cheater paid %d (%d without the slash); payouts %+v", at, s.TipHeight, s.Matured, got, unslashed[fp], s.Relays)
}

// TestShareBlocksOverLinks: with the authority path off (economy.links_only:
// relays neither post blocks to the authorities nor pull from them), the
// share blocks one compute relay of a paid circuit makes reach the other
// compute relay over the link between them (GOSSIP cells, spec/12 §5.5),
// and each relay's store holds the other's blocks, while the authority's
// chain stays empty (so the blocks did not travel through it).
func TestShareBlocksOverLinks(t *testing.T) {
	n := startNetwork(t, Spec{Mode: "anonymous", Replicas: 1, Economy: true, LinksOnly: true})
	api, _, _ := n.ClientAddrs()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	// With no stake required, the relays are listed before each has its
	// first consensus (and takes payments): the first circuits may be
	// refused for a few seconds.
	for deadline := time.Now().Add(60 * time.Second); ; {
		got, err := complete(ctx, api, e2ePrompt, 12)
		if err == nil && got != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("completion %q: %v", got, err)
		}
		time.Sleep(2 * time.Second)
	}
	circs, err := ClientCircuits(ctx, n)
	if err != nil || len(circs) == 0 {
		t.Fatalf("circuits: %v", err)
	}
	dirs := map[keys.Fingerprint]string{}
	var relays []keys.Fingerprint
	for _, h := range circs[len(circs)-1][1:] {
		fp, err := keys.ParseFingerprint(h.Fingerprint)
		if err != nil {
			t.Fatal(err)
		}
		for _, nd := range n.Nodes {
			if nd.Fingerprint == h.Fingerprint {
				dirs[fp] = filepath.Join(nd.Dir, "data")
			}
		}
		relays = append(relays, fp)
	}
	if len(relays) < 2 || len(dirs) != len(relays) {
		t.Fatalf("circuit compute hops %v, data dirs %v", relays, dirs)
	}
	// has reports whether the chain stored in dir holds a block by fp.
	has := func(dir string, fp keys.Fingerprint) bool {
		ch, _ := relayChain(t, dir)
		for _, b := range ch.Blocks() {
			if b.Fingerprint() == fp {
				return true
			}
		}
		return false
	}
	a, b := relays[0], relays[1]
	for deadline := time.Now().Add(90 * time.Second); ; {
		time.Sleep(3 * time.Second)
		if has(dirs[b], a) && has(dirs[a], b) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 90 s: %s holds a block of %s: %v; %s holds one of %s: %v", b, a, has(dirs[b], a), a, b, has(dirs[a], b))
		}
		if _, err := complete(ctx, api, e2ePrompt, 2); err != nil {
			t.Fatal(err)
		}
	}
	if ch, _ := relayChain(t, filepath.Join(n.Node("auth1").Dir, "data")); ch.Len() != 0 {
		t.Fatalf("the authority's chain has %d blocks with the authority path off", ch.Len())
	}
	ch, _ := relayChain(t, dirs[b])
	t.Logf("relay %s: %d blocks, tip height %d, work %v", b, ch.Len(), ch.Tip().Height, ch.Work())
}

// checkUnlinkable runs TestMintCannotLink's check (spec 12 P6) on the
// stores of a running paying network: no 8-byte window of any authority's
// issuance records (deposit, blinded message, blind signature) occurs in
// any relay's spent set or stored blocks (which carry the credits, their
// signatures and spend signatures), apart from the mint keys' ids, which
// every credit of one key shares. To show the check is not vacuous, a
// window of a redeemed credit added to the issuance side must be found.
func checkUnlinkable(t *testing.T, n *Network) {
	t.Helper()
	ctx := context.Background()
	var issued, redeemed, public [][]byte
	var credit []byte
	for _, nd := range n.Nodes {
		if nd.Kind != "dirauth" && nd.Kind != "relay" {
			continue
		}
		db, err := sharechain.OpenDB(filepath.Join(nd.Dir, "data"))
		if err != nil {
			t.Fatal(err)
		}
		if nd.Kind == "dirauth" {
			log, err := db.IssuanceLog(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range log {
				issued = append(issued, []byte(r.Deposit), r.Blinded, r.BlindSig)
			}
			ks, err := db.LoadKeys(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range ks.Keys() {
				id := k.ID()
				public = append(public, id[:])
			}
			db.Close()
			continue
		}
		ids, err := db.SpentIDs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			redeemed = append(redeemed, id[:])
		}
		db.Close()
		ch, _ := relayChain(t, filepath.Join(nd.Dir, "data"))
		for _, b := range ch.Blocks() {
			redeemed = append(redeemed, b.Marshal())
			for _, e := range b.Entries {
				if credit == nil && e.Units != sharechain.UnbondUnits {
					credit = e.Credit.Marshal()
				}
			}
		}
	}
	if len(issued) == 0 || len(redeemed) == 0 || credit == nil {
		t.Fatalf("linkage check: %d issuance and %d redemption records, a credit %v", len(issued), len(redeemed), credit != nil)
	}
	if v, ok := sharechain.SharedWindow(issued, redeemed, public); ok {
		t.Fatalf("a mint's issuance records and the relays' redemption records share %x", v)
	}
	if _, ok := sharechain.SharedWindow(append(issued, credit[len(credit)-16:]), redeemed, public); !ok {
		t.Fatal("the linkage check misses a credit's bytes on the issuance side")
	}
	t.Logf("linkage check: %d issuance records, %d redemption records, no shared window", len(issued)/3, len(redeemed))
}
