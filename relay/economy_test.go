package relay

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/relay/hop"
	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/sharechain"
)

// TestEconomyRedeem: a relay's payments (hop.Payments) follow its
// consensus: pay-required there says whether work must be paid; a credit
// of a mint key the consensus lists, spent to this relay for no more
// positions than its price allows, is redeemed once; a second use, more
// positions than paid for, a key the consensus does not list, a credit
// spent to another relay and garbage are refused.
func TestEconomyRedeem(t *testing.T) {
	ctx := context.Background()
	id, err := keys.NewIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	epoch := uint64(time.Now().Unix()) / 86400
	listed, err := sharechain.NewMint(nil, epoch, []uint64{1})
	if err != nil {
		t.Fatal(err)
	}
	unlisted, err := sharechain.NewMint(nil, epoch, []uint64{1})
	if err != nil {
		t.Fatal(err)
	}
	pubs, _ := listed.PublicKeys(ctx)
	der, err := x509.MarshalPKIXPublicKey(pubs[0].Key)
	if err != nil {
		t.Fatal(err)
	}
	c := &directory.Consensus{Params: map[string]int64{directory.ParamPayRequired: 1},
		MintKeys: []directory.MintKey{{Epoch: epoch, Denom: 1, PKIX: der}}}
	cons := consensusFunc(func() (*directory.Consensus, error) { return c, nil })
	cfg := &Config{DataDir: t.TempDir(), PricePerToken: 2000, // a credit of 1 pays 500 positions
		Authorities: []directory.AuthorityEntry{{Name: "a", Identity: "x"}}, Economy: EconomyConfig{Enabled: true}}
	e, err := newEconomy(cfg, id, &cons, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer e.close()
	e.runCtx = ctx
	if !e.Required() {
		t.Fatal("pay-required 1 in the consensus, Required false")
	}
	coins := func(m *sharechain.Mint, n int) []sharechain.Coin {
		db, err := sharechain.OpenDB(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		ks, _ := m.PublicKeys(ctx)
		cs, err := sharechain.NewWallet(db).Request(ctx, m, "d", ks[0], n)
		if err != nil {
			t.Fatal(err)
		}
		return cs
	}
	entry := func(co sharechain.Coin, fp keys.Fingerprint, units uint32) hop.PayEntry {
		en := co.Pay(fp, units)
		return hop.PayEntry{Units: units, Credit: en.Credit.Marshal(), SpendSig: en.SpendSig}
	}
	good := coins(listed, 4)
	other, _ := keys.NewIdentity(rand.Reader)
	for _, tc := range []struct {
		name string
		e    hop.PayEntry
		want string // "" redeems
	}{
		{"paid", entry(good[0], id.Fingerprint(), 500), ""},
		{"again", entry(good[0], id.Fingerprint(), 500), "already spent"},
		{"over the price", entry(good[1], id.Fingerprint(), 501), "at most 500 positions"},
		{"unlisted mint", entry(coins(unlisted, 1)[0], id.Fingerprint(), 1), "unknown mint key"},
		{"spent to another relay", entry(good[2], other.Fingerprint(), 1), "refused"},
		{"garbage", hop.PayEntry{Units: 1, Credit: []byte("x"), SpendSig: make([]byte, 64)}, "does not parse"},
		{"the price-refused credit, right units", entry(good[1], id.Fingerprint(), 500), ""},
	} {
		err := e.Redeem(ctx, tc.e)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	if n := e.node.Pending(); n != 2 {
		t.Errorf("%d entries wait for a block, want the 2 redeemed", n)
	}
	c = &directory.Consensus{Params: map[string]int64{}, MintKeys: c.MintKeys}
	if e.Required() {
		t.Error("Required without pay-required")
	}
}
