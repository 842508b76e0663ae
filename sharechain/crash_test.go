package sharechain

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unfed/unfed/relay/keys"
)

// TestShareChainCrash kills (SIGKILL) a real process that redeems credits,
// marks other ids spent and produces share blocks, at three different
// points, restarting it on the same data directory each time. After every
// kill the store must pass integrity_check, the chain must reload (every
// stored block re-validated), every redemption and block the child
// acknowledged (printed after its commit returned) must be there, and every
// credit in a stored block must be in the spent set.
func TestShareChainCrash(t *testing.T) {
	if os.Getenv("UNFED_CRASH_CHILD") == "1" {
		crashChild()
		return
	}
	ctx := context.Background()
	m := testMint(t, nil)
	ks := keySetOf(t, m)
	dir := t.TempDir()
	var pkix []string
	for _, k := range ks.Keys() {
		der, _ := x509.MarshalPKIXPublicKey(k.Key)
		pkix = append(pkix, fmt.Sprintf("%d %d %x", k.Epoch, k.Denom, der))
	}
	if err := os.WriteFile(filepath.Join(dir, "keys"), []byte(strings.Join(pkix, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, c := range credits(t, m, 1, 240) {
		lines = append(lines, hex.EncodeToString(c.Credit.Marshal())+" "+hex.EncodeToString(c.seed))
	}
	if err := os.WriteFile(filepath.Join(dir, "credits"), []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	ackSpent := map[string]bool{}
	ackBlocks := map[string]bool{}
	// Kill after this many acknowledged blocks in each round.
	for round, killAfter := range []int{1, 6, 13} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestShareChainCrash$", "-test.count=1")
		cmd.Env = append(os.Environ(), "UNFED_CRASH_CHILD=1", "UNFED_CRASH_DIR="+dir, fmt.Sprintf("UNFED_CRASH_ROUND=%d", round))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		n := 0
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 2 || len(f[1]) != 64 {
				continue // a line cut by the kill, or test framework output
			}
			switch f[0] {
			case "spent":
				ackSpent[f[1]] = true
				continue
			case "block":
				ackBlocks[f[1]] = true
			default:
				continue
			}
			if n++; n == killAfter {
				if err := cmd.Process.Kill(); err != nil {
					t.Fatal(err)
				}
			}
		}
		err = cmd.Wait()
		if n < killAfter {
			t.Fatalf("round %d: child stopped after %d acknowledgements (%v)", round, n, err)
		}
		db, err := OpenDB(dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.IntegrityCheck(ctx); err != nil {
			t.Fatal(err)
		}
		ch, err := NewChain(ctx, crashParams(), ks, db)
		if err != nil {
			t.Fatalf("round %d: reload: %v", round, err)
		}
		for id := range ackBlocks {
			var bid BlockID
			copy(bid[:], unhex(t, id))
			if _, ok := ch.Block(bid); !ok {
				t.Fatalf("round %d: acknowledged block %s lost", round, id)
			}
		}
		for id := range ackSpent {
			var cid CreditID
			copy(cid[:], unhex(t, id))
			if ok, err := db.Spent(ctx, cid); err != nil || !ok {
				t.Fatalf("round %d: acknowledged redemption %s lost (%v)", round, id, err)
			}
		}
		for _, b := range ch.MainChain() {
			for _, e := range b.Entries {
				if ok, _ := db.Spent(ctx, e.Credit.ID()); !ok {
					t.Fatalf("round %d: block credit not in the spent set", round)
				}
			}
		}
		t.Logf("round %d: killed after %d acknowledged blocks; %d blocks, %d acknowledged ids", round, n, ch.Len(), len(ackSpent))
		db.Close()
	}
}

func crashParams() Params { return DefaultParams("crash") }

// crashChild is the process TestShareChainCrash kills. It never returns
// normally before the kill unless it runs out of credits or time.
func crashChild() {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		os.Exit(3)
	}
	ctx := context.Background()
	dir := os.Getenv("UNFED_CRASH_DIR")
	round := 0
	fmt.Sscan(os.Getenv("UNFED_CRASH_ROUND"), &round)
	ks := &KeySet{}
	kb, err := os.ReadFile(filepath.Join(dir, "keys"))
	if err != nil {
		fail(err)
	}
	for _, l := range strings.Split(string(kb), "\n") {
		var e, d uint64
		var h string
		if _, err := fmt.Sscan(l, &e, &d, &h); err != nil {
			fail(err)
		}
		der, _ := hex.DecodeString(h)
		pk, err := x509.ParsePKIXPublicKey(der)
		if err != nil {
			fail(err)
		}
		rk, ok := pk.(*rsa.PublicKey)
		if !ok {
			fail(fmt.Errorf("key of type %T", pk))
		}
		if err := ks.Add(MintPublicKey{Epoch: e, Denom: d, Key: rk}); err != nil {
			fail(err)
		}
	}
	cb, _ := os.ReadFile(filepath.Join(dir, "credits"))
	all := strings.Split(string(cb), "\n")
	db, err := OpenDB(dir)
	if err != nil {
		fail(err)
	}
	spent := NewSpentSet(db, ks)
	ch, err := NewChain(ctx, crashParams(), ks, db)
	if err != nil {
		fail(err)
	}
	var outMu sync.Mutex
	ack := func(kind string, id []byte) {
		outMu.Lock()
		fmt.Printf("%s %x\n", kind, id)
		outMu.Unlock()
	}
	// Background load: random ids marked spent, concurrently.
	for g := 0; g < 4; g++ {
		go func() {
			for {
				var id CreditID
				rand.Read(id[:])
				if err := spent.MarkSpent(ctx, id, testEpoch); err != nil {
					fail(err)
				}
				ack("spent", id[:])
			}
		}()
	}
	seed := make([]byte, ed25519.SeedSize)
	seed[0] = byte(round + 1)
	producer, err := keys.IdentityFromSeed(seed)
	if err != nil {
		fail(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for i := round * 80; i+5 <= (round+1)*80 && time.Now().Before(deadline); i += 5 {
		var entries []Entry
		var wg sync.WaitGroup
		var mu sync.Mutex
		for _, line := range all[i : i+5] {
			h, sh, _ := strings.Cut(line, " ")
			raw, _ := hex.DecodeString(h)
			seed, _ := hex.DecodeString(sh)
			c, err := ParseCredit(raw)
			if err != nil {
				fail(err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := spent.Redeem(ctx, c, testEpoch); err != nil {
					fail(err)
				}
				id := c.ID()
				ack("spent", id[:])
				mu.Lock()
				entries = append(entries, Coin{Credit: c, seed: seed}.Pay(producer.Fingerprint(), 1))
				mu.Unlock()
			}()
		}
		wg.Wait()
		b := &Block{Height: 1, Parent: crashParams().Genesis(), TimeMs: testNowMs + uint64(i), Entries: entries}
		if tip := ch.Tip(); tip != nil {
			b.Height, b.Parent, b.TimeMs = tip.Height+1, tip.ID(), tip.TimeMs+1
		}
		if err := b.Sign(producer); err != nil {
			fail(err)
		}
		if err := ch.Add(ctx, b, testNowMs+1e7); err != nil {
			fail(err)
		}
		id := b.ID()
		ack("block", id[:])
	}
	// Out of credits: keep the background writers going until killed.
	time.Sleep(time.Until(deadline))
	os.Exit(0)
}
