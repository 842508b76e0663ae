package client

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/sharechain"
)

// TestPayerPaysAtPrice: the wallet fills itself at the faucet and pays a
// hop, in one PAY, credits covering at least the positions asked for at
// the hop's price, each entry bound to that hop (its spend signature
// verifies for the hop's fingerprint and the units); without a faucet an
// empty wallet cannot pay.
func TestPayerPaysAtPrice(t *testing.T) {
	ctx := context.Background()
	epoch := uint64(time.Now().Unix()) / 86400
	m, err := sharechain.NewMint(nil, epoch, []uint64{1})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	pubs, _ := m.PublicKeys(ctx)
	der, _ := x509.MarshalPKIXPublicKey(pubs[0].Key)
	c := &directory.Consensus{Params: map[string]int64{directory.ParamPayRequired: 1},
		MintKeys: []directory.MintKey{{Epoch: epoch, Denom: 1, PKIX: der}}}
	hopID, _ := keys.NewIdentity(rand.Reader)
	p := &payer{dir: t.TempDir(), cfg: WalletConfig{Faucet: srv.URL, Refill: 5}}
	defer p.close()
	msg, covered, err := p.pay(ctx, c, hopID.Fingerprint(), 1000, 1500) // a credit of 1 pays 1000 positions
	if err != nil {
		t.Fatal(err)
	}
	if covered != 2000 || len(msg.Entries) != 2 {
		t.Fatalf("covered %d positions with %d entries, want 2000 with 2", covered, len(msg.Entries))
	}
	for _, e := range msg.Entries {
		cr, err := sharechain.ParseCredit(e.Credit)
		if err != nil {
			t.Fatal(err)
		}
		en := sharechain.Entry{Units: e.Units, Credit: cr, SpendSig: e.SpendSig}
		if !en.VerifySpend(hopID.Fingerprint()) || e.Units != 1000 {
			t.Fatalf("entry of %d units not bound to the hop", e.Units)
		}
	}
	if b, _ := p.wallet.Balance(ctx, epoch); b.Total != 3 {
		t.Fatalf("wallet holds %d after a refill of 5 and paying 2", b.Total)
	}
	empty := &payer{dir: t.TempDir()}
	defer empty.close()
	if _, _, err := empty.pay(ctx, c, hopID.Fingerprint(), 1000, 1); !errors.Is(err, sharechain.ErrInsufficient) {
		t.Fatalf("an empty wallet without a faucet: %v", err)
	}
}
