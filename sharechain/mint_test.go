package sharechain

import (
	"bytes"
	"context"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
)

// TestFaucetKeepsKeys: a restarted faucet signs with the keys it wrote
// (relays know them); two epochs later it makes new ones.
func TestFaucetKeepsKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), MintKeysFile)
	ids := func(m *Mint) map[KeyID]bool {
		pubs, _ := m.PublicKeys(context.Background())
		out := map[KeyID]bool{}
		for _, k := range pubs {
			out[k.ID()] = true
		}
		return out
	}
	m1, err := faucetMint(nil, path, 100, []uint64{1})
	if err != nil {
		t.Fatal(err)
	}
	m2, err := faucetMint(nil, path, 101, []uint64{1})
	if err != nil {
		t.Fatal(err)
	}
	a, b := ids(m1), ids(m2)
	if len(a) != 2 || len(b) != 2 {
		t.Fatalf("keys: %d, %d", len(a), len(b))
	}
	for id := range a {
		if !b[id] {
			t.Fatal("a restarted faucet changed its keys within their epochs")
		}
	}
	m3, err := faucetMint(nil, path, 102, []uint64{1})
	if err != nil {
		t.Fatal(err)
	}
	for id := range ids(m3) {
		if a[id] {
			t.Fatal("keys reused past their epochs")
		}
	}
}

// badIssuer wraps a mint and corrupts its answers.
type badIssuer struct {
	*Mint
	mode string
}

func (b badIssuer) Issue(ctx context.Context, dep string, id KeyID, blinded [][]byte) ([][]byte, error) {
	sigs, err := b.Mint.Issue(ctx, dep, id, blinded)
	if err != nil {
		return nil, err
	}
	switch b.mode {
	case "flip":
		sigs[0][17] ^= 1
	case "short":
		sigs = sigs[:len(sigs)-1]
	case "truncated":
		sigs[0] = sigs[0][:100]
	}
	return sigs, nil
}

// TestWalletRefusesBadMint: a mint that answers with a wrong signature, too
// few signatures or a short one gets an error, and nothing is stored.
func TestWalletRefusesBadMint(t *testing.T) {
	ctx := context.Background()
	m := testMint(t, nil)
	for _, mode := range []string{"flip", "short", "truncated"} {
		db := openDB(t)
		w := NewWallet(db)
		if _, err := w.Request(ctx, badIssuer{m, mode}, "d", keyOf(t, m, 1), 3); err == nil {
			t.Errorf("%s: bad mint answer accepted", mode)
		}
		if b, _ := w.Balance(ctx, testEpoch); b.Total != 0 {
			t.Errorf("%s: %d units stored from a bad answer", mode, b.Total)
		}
	}
}

// TestMintHTTPBadInput: malformed issue requests get 400, not a crash, and
// a well-formed one works.
func TestMintHTTPBadInput(t *testing.T) {
	m := testMint(t, nil)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	kid := keyOf(t, m, 1).ID()
	for name, body := range map[string]string{
		"not json":     "{",
		"bad key id":   `{"deposit":"d","key_id":"zz","blinded":["AAAA"]}`,
		"unknown key":  `{"deposit":"d","key_id":"0000000000000000","blinded":["AAAA"]}`,
		"none":         `{"deposit":"d","key_id":"` + hexKey(kid) + `","blinded":[]}`,
		"wrong length": `{"deposit":"d","key_id":"` + hexKey(kid) + `","blinded":["AAAA"]}`,
		"long deposit": `{"deposit":"` + strings.Repeat("x", 300) + `","key_id":"` + hexKey(kid) + `","blinded":["AAAA"]}`,
	} {
		resp, err := http.Post(srv.URL+"/mint/v1/issue", "application/json", bytes.NewReader([]byte(body)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %s", name, resp.Status)
		}
	}
	huge := bytes.Repeat([]byte("A"), maxIssueBody+10)
	resp, err := http.Post(srv.URL+"/mint/v1/issue", "application/json", bytes.NewReader(huge))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("oversized body: %s", resp.Status)
	}
	cs, err := NewWallet(openDB(t)).Request(context.Background(), HTTPIssuer{URL: srv.URL}, "d", keyOf(t, m, 1), 2)
	if err != nil || len(cs) != 2 {
		t.Fatalf("good request over HTTP: %v", err)
	}
	if _, err := (HTTPIssuer{URL: srv.URL + "/nothing"}).PublicKeys(context.Background()); err == nil {
		t.Fatal("a 404 from the mint gave keys")
	}
}

func hexKey(id KeyID) string { return hex.EncodeToString(id[:]) }

// TestAuthorityMintRotates: an authority's mint holds keys for the current
// and the next epoch, keeps the previous one's (its credits are still
// redeemable), drops older ones, writes every change to its key file, and
// a restart within an epoch signs with the same keys.
func TestAuthorityMintRotates(t *testing.T) {
	path := filepath.Join(t.TempDir(), MintKeysFile)
	const sec = 100 // epoch length in seconds
	at := func(epoch uint64) uint64 { return epoch*sec*1000 + 500 }
	epochs := func(ks []MintPublicKey) map[uint64]int {
		out := map[uint64]int{}
		for _, k := range ks {
			out[k.Epoch]++
		}
		return out
	}
	m, err := OpenAuthorityMint(nil, path, []uint64{1, 10}, sec, at(7))
	if err != nil {
		t.Fatal(err)
	}
	ks, err := m.KeysAt(sec, at(7))
	if err != nil {
		t.Fatal(err)
	}
	if e := epochs(ks); len(ks) != 4 || e[7] != 2 || e[8] != 2 {
		t.Fatalf("epoch 7: keys by epoch %v", e)
	}
	ks8, err := m.KeysAt(sec, at(8))
	if err != nil {
		t.Fatal(err)
	}
	if e := epochs(ks8); len(ks8) != 6 || e[7] != 2 || e[8] != 2 || e[9] != 2 {
		t.Fatalf("epoch 8: keys by epoch %v, want 7, 8 and 9", e)
	}
	// A restart in epoch 8 loads the same six keys.
	r, err := OpenAuthorityMint(nil, path, []uint64{1, 10}, sec, at(8))
	if err != nil {
		t.Fatal(err)
	}
	rk, _ := r.PublicKeys(context.Background())
	ids := map[KeyID]bool{}
	for _, k := range ks8 {
		ids[k.ID()] = true
	}
	for _, k := range rk {
		if !ids[k.ID()] {
			t.Fatalf("restarted mint has a new key %x", k.ID())
		}
	}
	if len(rk) != len(ks8) {
		t.Fatalf("restarted mint has %d keys, want %d", len(rk), len(ks8))
	}
	ks10, err := r.KeysAt(sec, at(10))
	if err != nil {
		t.Fatal(err)
	}
	if e := epochs(ks10); len(ks10) != 6 || e[9] != 2 || e[10] != 2 || e[11] != 2 {
		t.Fatalf("epoch 10: keys by epoch %v, want 9, 10 and 11", e)
	}
	if _, err := OpenAuthorityMint(nil, path, nil, sec, at(10)); err == nil {
		t.Error("a mint without denominations opened")
	}
}
