package hop_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/unfed/unfed/compute/model"
	"github.com/unfed/unfed/relay/hop"
	"github.com/unfed/unfed/relay/hop/hoptest"
)

// fakePayments accepts entries whose credit starts with "ok" once each
// (a spent set), and records what each hop redeemed.
type fakePayments struct {
	required bool
	mu       sync.Mutex
	spent    map[string]bool
	units    uint64
}

func (f *fakePayments) Required() bool { return f.required }

func (f *fakePayments) Redeem(_ context.Context, e hop.PayEntry) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !bytes.HasPrefix(e.Credit, []byte("ok")) {
		return errors.New("bad credit")
	}
	if f.spent[string(e.Credit)] {
		return errors.New("already spent")
	}
	if f.spent == nil {
		f.spent = map[string]bool{}
	}
	f.spent[string(e.Credit)] = true
	f.units += uint64(e.Units)
	return nil
}

func entry(credit string, units uint32) hop.PayEntry {
	return hop.PayEntry{Units: units, Credit: []byte(credit), SpendSig: make([]byte, hop.PaySigLen)}
}

// TestPaidWork: where payment is required, each compute hop runs only the
// positions paid for in its own layer: work beyond the balance ends the
// session with payment-required, at whichever hop runs out (here the
// second, fed by the first over the edge); a refused entry (bad credit,
// spent twice) is answered payment-refused and leaves the session usable.
// Where payment is not required, the same hops work unpaid.
func TestPaidWork(t *testing.T) {
	ids := prompt(t)
	shards := []*model.Shard{loadShard(t, 0, 2, model.Limits{}), loadShard(t, 2, 0, model.Limits{})}
	for _, required := range []bool{true, false} {
		pays := []*fakePayments{{required: required}, {required: required}}
		var svcs []hoptest.Hop
		for i, sh := range shards {
			svcs = append(svcs, newService(t, sh, func(c *hop.Config) { c.Payments = pays[i] }))
		}
		chain := hoptest.NewChain(0, svcs...)
		c := chainClient(t, chain)
		c.setupAll(plainSetups(t, shards, hop.F32, 4))
		if !required {
			c.logits(0, ids) // free work
			chain.Close()
			continue
		}
		// Hop 0 paid for everything, hop 1 for one position less than the prompt.
		c.send(0, &hop.Pay{Entries: []hop.PayEntry{entry("ok-a", uint32(len(ids)+1))}})
		c.send(1, &hop.Pay{Entries: []hop.PayEntry{entry("ok-b", 1), entry("ok-c", uint32(len(ids)-2))}})
		// A bad credit and a spent one are refused, the session stays.
		c.send(1, &hop.Pay{Entries: []hop.PayEntry{entry("bad", 100)}})
		if e := c.expectError(1, hop.CodePaymentRefused); !strings.Contains(e.Reason, "bad credit") {
			t.Fatalf("reason %q", e.Reason)
		}
		c.send(1, &hop.Pay{Entries: []hop.PayEntry{entry("ok-b", 100)}})
		if e := c.expectError(1, hop.CodePaymentRefused); !strings.Contains(e.Reason, "already spent") {
			t.Fatalf("reason %q", e.Reason)
		}
		c.send(0, &hop.Tokens{Start: 0, IDs: ids})
		e := c.expectError(1, hop.CodePaymentRequired)
		if !strings.Contains(e.Reason, "paid for") {
			t.Fatalf("reason %q", e.Reason)
		}
		if pays[0].units != uint64(len(ids)+1) || pays[1].units != uint64(len(ids)-1) {
			t.Fatalf("redeemed %d and %d units", pays[0].units, pays[1].units)
		}
		chain.Close()
	}

	// Paid enough: the prompt and one more token run on a fresh circuit.
	pay := &fakePayments{required: true}
	var svcs []hoptest.Hop
	for _, sh := range shards {
		svcs = append(svcs, newService(t, sh, func(c *hop.Config) { c.Payments = pay }))
	}
	chain := hoptest.NewChain(0, svcs...)
	t.Cleanup(chain.Close)
	c := chainClient(t, chain)
	c.setupAll(plainSetups(t, shards, hop.F32, 4))
	for i, name := range []string{"ok-0", "ok-1"} {
		c.send(i, &hop.Pay{Entries: []hop.PayEntry{entry(name, uint32(len(ids)+1))}})
	}
	lg := c.logits(0, ids)
	c.logits(len(ids), []int{greedy(lg)})
	// The balance is spent: the next token is refused by the first hop.
	c.send(0, &hop.Tokens{Start: len(ids) + 1, IDs: []int{1}})
	c.expectError(0, hop.CodePaymentRequired)
}

// TestPayCodec: PAY round-trips and its decoder rejects every malformed
// layout with ErrMalformed.
func TestPayCodec(t *testing.T) {
	m := &hop.Pay{Entries: []hop.PayEntry{entry("ok-1", 7), entry(strings.Repeat("c", hop.MaxPayCredit), 1<<31)}}
	b := m.Append(nil)
	got, err := hop.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	p := got.(*hop.Pay)
	if len(p.Entries) != 2 || p.Entries[1].Units != 1<<31 || string(p.Entries[0].Credit) != "ok-1" || len(p.Entries[1].SpendSig) != hop.PaySigLen {
		t.Fatalf("decoded %+v", p)
	}
	many := &hop.Pay{}
	for range hop.MaxPayEntries + 1 {
		many.Entries = append(many.Entries, entry("x", 1))
	}
	long := entry(strings.Repeat("c", hop.MaxPayCredit+1), 1)
	for name, bad := range map[string][]byte{
		"empty":          {byte(hop.TypePay)},
		"no entries":     {byte(hop.TypePay), 0},
		"too many":       many.Append(nil),
		"trailing":       append(bytes.Clone(b), 0),
		"cut":            b[:len(b)-1],
		"credit too big": (&hop.Pay{Entries: []hop.PayEntry{long}}).Append(nil),
		"empty credit":   (&hop.Pay{Entries: []hop.PayEntry{entry("", 1)}}).Append(nil),
	} {
		if _, err := hop.Decode(bad); !errors.Is(err, hop.ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func FuzzDecodePay(f *testing.F) {
	f.Add((&hop.Pay{Entries: []hop.PayEntry{entry("ok-1", 7)}}).Append(nil))
	f.Add((&hop.Pay{Entries: []hop.PayEntry{entry("a", 1), entry("bb", 2)}}).Append(nil))
	f.Add([]byte{byte(hop.TypePay), 1, 0, 0, 0, 1, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := hop.Decode(append([]byte{byte(hop.TypePay)}, b...))
		if err != nil {
			return
		}
		p := m.(*hop.Pay)
		if len(p.Entries) < 1 || len(p.Entries) > hop.MaxPayEntries {
			t.Fatalf("%d entries", len(p.Entries))
		}
		for _, e := range p.Entries {
			if len(e.Credit) < 1 || len(e.Credit) > hop.MaxPayCredit || len(e.SpendSig) != hop.PaySigLen {
				t.Fatalf("entry %d/%d bytes", len(e.Credit), len(e.SpendSig))
			}
		}
		if !bytes.Equal(p.Append(nil), append([]byte{byte(hop.TypePay)}, b...)) {
			t.Fatal("re-encoding differs")
		}
	})
}

// TestPaidDealing: a dealer is paid per position it deals: with payment
// required, a DEAL the balance covers is dealt and the next one, unpaid,
// ends the session with payment-required.
func TestPaidDealing(t *testing.T) {
	pay := &fakePayments{required: true}
	ranges := [][2]int{{0, storiesLayers}}
	svcs := confServices(t, ranges, map[int]func(*hop.Config){0: func(c *hop.Config) { c.Payments = pay }})
	var hops []hoptest.Hop
	for _, s := range svcs {
		hops = append(hops, s)
	}
	chain := hoptest.NewChain(0, hops...)
	t.Cleanup(chain.Close)
	c := chainClient(t, chain)
	c.setupAll(confSetups(t, ranges))
	c.send(0, &hop.Pay{Entries: []hop.PayEntry{entry("ok-d", 2)}})
	c.send(0, &hop.Deal{Step: 0, Rows: 2})
	c.send(0, &hop.Deal{Step: 1, Rows: 1})
	if e := c.expectError(0, hop.CodePaymentRequired); !strings.Contains(e.Reason, "1 positions of work, 0 paid for") {
		t.Fatalf("reason %q: the first DEAL was not taken from the balance", e.Reason)
	}
}

// TestPaidParties: each party of a confidential stage is paid per position
// of every step it runs, taken when the step's PREP arrives: with payment
// required, party A paid for 3 positions and party B for 2 run two steps;
// the third step's PREP finds B's balance empty and ends B's session with
// payment-required, while A's balance still covered it.
func TestPaidParties(t *testing.T) {
	ranges := [][2]int{{0, storiesLayers}}
	pays := map[int]*fakePayments{1: {required: true}, 2: {required: true}}
	mods := map[int]func(*hop.Config){}
	for pos, p := range pays {
		mods[pos] = func(c *hop.Config) { c.Payments = p }
	}
	_, c := chainOf(t, 61, confServices(t, ranges, mods))
	c.setupAll(confSetups(t, ranges))
	cc := newConfClient(t, c, ranges)
	c.send(1, &hop.Pay{Entries: []hop.PayEntry{entry("ok-a", 3)}})
	c.send(2, &hop.Pay{Entries: []hop.PayEntry{entry("ok-b", 2)}})
	cc.batch(prompt(t)[:2])
	cc.dealUpTo(3)
	if e := c.expectError(2, hop.CodePaymentRequired); !strings.Contains(e.Reason, "1 positions of work, 0 paid for") {
		t.Fatalf("reason %q: the two steps were not taken from B's balance", e.Reason)
	}
}
