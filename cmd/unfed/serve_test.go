package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/sharechain"
)

// TestShareChainServeCrash runs a faucet and `unfed sharechain serve` (the
// follower an authority runs) as real processes. An in-process relay is paid
// from a wallet filled at the faucet, produces share blocks and gossips each
// one to the follower over HTTP. Twice, the follower is killed (SIGKILL)
// while a block is on its way, and restarted on its data directory. At the
// end the follower's tip is the relay's, every block it acknowledged (HTTP
// 200) is there, the payouts it serves are exactly the value paid, a second
// follower that only hears what the first forwards (--peer) reaches the
// same tip and payouts, the metrics show the height, and SIGTERM stops both
// cleanly.
func TestShareChainServeCrash(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin := buildUnfed(ctx, t)
	faucet, mintAddr := start(ctx, t, "mint", bin, "sharechain", "faucet", "--data-dir", filepath.Join(dir, "mint"), "--listen", "127.0.0.1:0", "--denoms", "1")
	defer faucet.Process.Kill()
	mint := sharechain.HTTPIssuer{URL: "http://" + mintAddr}
	pubs, err := mint.PublicKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ks := &sharechain.KeySet{}
	for _, k := range pubs {
		if err := ks.Add(k); err != nil {
			t.Fatal(err)
		}
	}
	p := sharechain.DefaultParams(sharechain.DefaultNetwork)
	p.Window, p.Maturity = 8, 5
	now := uint64(time.Now().UnixMilli())
	epoch := p.Epoch(now)
	var key sharechain.MintPublicKey
	for _, k := range pubs {
		if k.Epoch == epoch {
			key = k
		}
	}
	wdb, err := sharechain.OpenDB(filepath.Join(dir, "client"))
	if err != nil {
		t.Fatal(err)
	}
	defer wdb.Close()
	w := sharechain.NewWallet(wdb)
	if _, err := w.Request(ctx, mint, "faucet", key, 40); err != nil {
		t.Fatal(err)
	}
	rdb, err := sharechain.OpenDB(filepath.Join(dir, "relay"))
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	id, err := keys.NewIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	relay, err := sharechain.NewNode(ctx, sharechain.NodeConfig{Params: p, Keys: ks, DB: rdb, Identity: id})
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()

	// A second follower that hears only what the first forwards to it.
	second, addrB := start(ctx, t, "sharechain", bin, "sharechain", "serve", "--data-dir", filepath.Join(dir, "authority2"), "--listen", "127.0.0.1:0", "--mint", "http://"+mintAddr, "--window", "8", "--maturity", "5")
	defer func() { second.Process.Kill() }()
	followerDir := filepath.Join(dir, "authority")
	follower, addr := start(ctx, t, "sharechain", bin, "sharechain", "serve", "--data-dir", followerDir, "--listen", "127.0.0.1:0", "--mint", "http://"+mintAddr, "--window", "8", "--maturity", "5", "--peer", "http://"+addrB)
	defer func() { follower.Process.Kill() }()
	acked := map[sharechain.BlockID]bool{}
	client := &http.Client{Timeout: 20 * time.Second}
	// post gossips b, sending the ancestors the follower asks for first; it
	// reports whether the follower acknowledged b.
	var post func(b *sharechain.Block, depth int) bool
	post = func(b *sharechain.Block, depth int) bool {
		// post also runs on another goroutine: it reports with Errorf.
		if depth > 50 {
			t.Error("ancestor fetch does not end")
			return false
		}
		resp, err := client.Post("http://"+addr+"/sharechain/v1/gossip", "application/octet-stream",
			bytes.NewReader(sharechain.EncodeGossip(sharechain.MsgBlock, b.Marshal())))
		if err != nil {
			return false // killed under us
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("gossip: %s %s", resp.Status, body)
			return false
		}
		if len(body) > 0 {
			asks, err := sharechain.SplitGossip(body, 3)
			if err != nil {
				t.Errorf("gossip reply: %v", err)
				return false
			}
			for _, ask := range asks {
				m, err := sharechain.ParseGossip(ask)
				if err != nil || m.Type != sharechain.MsgGetBlock {
					t.Errorf("gossip reply: %v", err)
					return false
				}
				missing, ok := relay.Chain().Block(m.BlockID)
				if !ok || !post(missing, depth+1) {
					return false
				}
			}
			return post(b, depth+1)
		}
		acked[b.ID()] = true
		return true
	}
	for i := 0; i < 20; i++ {
		cs, err := w.Spend(ctx, 2, epoch)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			if err := relay.Pay(ctx, c.Pay(id.Fingerprint(), 3), now); err != nil {
				t.Fatal(err)
			}
		}
		b, err := relay.Produce(ctx, now)
		if err != nil {
			t.Fatal(err)
		}
		now++
		if i == 6 || i == 13 {
			// Kill the follower while this block is in flight, then restart.
			done := make(chan bool)
			go func() { done <- post(b, 0) }()
			follower.Process.Signal(syscall.SIGKILL)
			<-done
			follower.Wait()
			follower, addr = start(ctx, t, "sharechain", bin, "sharechain", "serve", "--data-dir", followerDir, "--listen", "127.0.0.1:0", "--window", "8", "--maturity", "5", "--peer", "http://"+addrB)
			continue
		}
		if !post(b, 0) {
			t.Fatalf("block %d not acknowledged", i)
		}
	}
	var st sharechain.StatusDoc
	getJSON(t, client, "http://"+addr+"/sharechain/v1/status", &st)
	tip := relay.Chain().Tip()
	if st.Height != tip.Height || st.Tip != hexID(tip.ID()) {
		t.Fatalf("follower at height %d tip %s, relay at %d", st.Height, st.Tip, tip.Height)
	}
	for bid := range acked {
		resp, err := client.Get("http://" + addr + "/sharechain/v1/block/" + hexID(bid))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("acknowledged block %x lost", bid[:8])
		}
	}
	// Payouts at the follower, an integer check: the relay produced every
	// block, so it is paid the whole value of the 15 matured blocks (2
	// credits of 1 each), and its own node computes the same.
	if st.Matured != 15 || st.Value != 30 || st.Paid != 30 || st.Carried != 0 {
		t.Fatalf("follower payouts: %+v", st)
	}
	var pays []sharechain.PayoutDoc
	getJSON(t, client, "http://"+addr+"/sharechain/v1/payouts", &pays)
	if len(pays) != 1 || pays[0].Relay != id.Fingerprint().String() || pays[0].Payout != 30 {
		t.Fatalf("payouts %+v", pays)
	}
	if s := relay.Chain().Payouts(); s.Paid != 30 || len(s.Relays) != 1 || s.Relays[0].Amount != 30 {
		t.Fatalf("relay's own payouts %+v", s)
	}
	// The second follower converges on the same tip through forwarding
	// (blocks lost in the kills reach it as ancestors of later ones).
	deadline := time.Now().Add(60 * time.Second)
	var stB sharechain.StatusDoc
	for {
		getJSON(t, client, "http://"+addrB+"/sharechain/v1/status", &stB)
		if stB.Tip == st.Tip || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if stB.Tip != st.Tip || stB.Paid != 30 {
		t.Fatalf("second follower at height %d, paid %d; first at %d", stB.Height, stB.Paid, st.Height)
	}
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), "unfed_sharechain_height 20") {
		t.Fatalf("metrics lack the height:\n%.400s", metrics)
	}
	for _, p := range []*exec.Cmd{follower, second} {
		p.Process.Signal(syscall.SIGTERM)
		if err := p.Wait(); err != nil {
			t.Fatalf("follower did not exit cleanly: %v", err)
		}
	}
}

func hexID(id sharechain.BlockID) string { return hex.EncodeToString(id[:]) }

func getJSON(t *testing.T, c *http.Client, url string, v any) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}
