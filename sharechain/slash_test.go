package sharechain

import (
	"context"
	"errors"
	"testing"

	"github.com/unfed/unfed/compute/model"
	"github.com/unfed/unfed/compute/modeltest"
	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/relay/verify"
	"github.com/unfed/unfed/relay/verify/verifytest"
)

// TestSlashing: three relays earn shares; the cheater's fraud proof (its
// signed commitment to a wrong output, re-executed on stories260K by the
// judge, as an authority does) slashes it, voiding its unpaid shares; its
// loss goes to the others and the total paid is unchanged; its locked stake
// is burned. An honest relay's proof convicts nobody and changes nothing.
func TestSlashing(t *testing.T) {
	ctx := context.Background()
	sh, err := model.Load(modeltest.Path(t, "stories260K.gguf"), model.ShardOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	judge := func(proof []byte) (keys.Fingerprint, bool, error) {
		tk, err := verify.DecodeTicket(proof)
		if err != nil {
			return keys.Fingerprint{}, false, err
		}
		fp := keys.FingerprintOf(tk.Commitment.Identity[:])
		if !tk.Commitment.Verify() {
			return fp, false, errors.New("bad commitment signature")
		}
		v, err := verify.Check(tk, sh)
		return fp, v == verify.Fraud, err
	}
	m := testMint(t, nil)
	ks := keySetOf(t, m)
	p := DefaultParams("t")
	p.Window, p.Maturity = 9, 3
	ids := []*keys.Identity{identity(t, 1), identity(t, 2), identity(t, 3)}
	cheater := ids[1]
	n := newNode(t, p, ks, nil)
	cs := credits(t, m, 10, 14)
	stake := cs[12:] // the cheater locks 20 units of stake in its first block
	cs = cs[:12]
	var prev *Block
	for i, c := range cs {
		pays := []payment{pay(c, uint32(10+i))}
		if i == 1 {
			pays = append(pays, pay(stake[0], 0), pay(stake[1], 0))
		}
		prev = mkBlock(t, p, ids[i%3], prev, testNowMs+uint64(i), nil, pays...)
		if err := n.Chain().Add(ctx, prev, testNowMs); err != nil {
			t.Fatal(err)
		}
	}
	paid := func() map[keys.Fingerprint]uint64 {
		s := n.Chain().Payouts()
		if s.Paid != s.Value || s.Value != 90 {
			t.Fatalf("paid %d of %d, want 90", s.Paid, s.Value)
		}
		out := map[keys.Fingerprint]uint64{}
		for _, r := range s.Relays {
			out[r.Relay] = r.Amount
		}
		return out
	}
	before := paid() // the stake entries are not in the pool: value stays 90
	if s := n.Chain().Stake(cheater.Fingerprint()); s != 20 {
		t.Fatalf("cheater's stake %d, want 20", s)
	}
	if _, err := n.SubmitProof(ctx, verifytest.TokenTicket(t, sh, "stories260K", ids[0], []int{1, 2, 3}, nil), judge); !errors.Is(err, ErrNotFraud) {
		t.Fatalf("honest proof: %v", err)
	}
	if got := paid(); got[ids[0].Fingerprint()] != before[ids[0].Fingerprint()] {
		t.Fatal("an honest proof changed payouts")
	}
	fp, err := n.SubmitProof(ctx, verifytest.TokenTicket(t, sh, "stories260K", cheater, []int{1, 2, 3}, &[32]byte{1}), judge)
	if err != nil || fp != cheater.Fingerprint() {
		t.Fatalf("fraud proof: %v (relay %s)", err, fp)
	}
	after := paid()
	if s := n.Chain().Stake(cheater.Fingerprint()); s != 0 {
		t.Fatalf("cheater's stake after the slash %d, want 0 (burned)", s)
	}
	// Slashed at height 12 with maturity 3: blocks from height 9 on are
	// unpaid, so the cheater keeps exactly what blocks 1..8 paid it.
	want := expectPayouts(n.Chain().MainChain()[:9], p, ks, map[keys.Fingerprint]uint64{cheater.Fingerprint(): 12})
	for fp, amt := range after {
		if amt != want[fp] {
			t.Fatalf("relay %s paid %d after the slash, want %d", fp, amt, want[fp])
		}
	}
	if after[cheater.Fingerprint()] >= before[cheater.Fingerprint()] {
		t.Fatalf("cheater paid %d after the slash, %d before", after[cheater.Fingerprint()], before[cheater.Fingerprint()])
	}
	for _, id := range []*keys.Identity{ids[0], ids[2]} {
		if after[id.Fingerprint()] < before[id.Fingerprint()] {
			t.Fatal("an honest relay lost pay to the slash")
		}
	}
}
