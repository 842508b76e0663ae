package sharechain

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"
)

// TestFaucetWalletCommands runs the faucet on 127.0.0.1 and the wallet
// commands against it: the wallet receives exactly the amount asked for, in
// the largest denominations, and the mint's log has one record per credit.
func TestFaucetWalletCommands(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	mintDir, walletDir := t.TempDir(), t.TempDir()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	fctx, stop := context.WithCancel(ctx)
	go func() {
		done <- Faucet(fctx, []string{"--data-dir", mintDir, "--listen", "127.0.0.1:0", "--denoms", "1,10,100"}, pw, io.Discard)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, pr)
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening kind=mint addr=")
	if !ok || !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("listening line %q", line)
	}
	var out bytes.Buffer
	if err := WalletRequest(ctx, []string{"--data-dir", walletDir, "--mint", "http://" + addr, "--amount", "123"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "received 123 units in 6 credits") {
		t.Fatalf("request output %q", out.String())
	}
	out.Reset()
	if err := WalletBalance(ctx, []string{"--data-dir", walletDir}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if want := "balance 123 units\n  1 x 100\n  2 x 10\n  3 x 1\n"; out.String() != want {
		t.Fatalf("balance output %q, want %q", out.String(), want)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("faucet: %v", err)
	}
	db, err := OpenDB(mintDir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if log, err := db.IssuanceLog(ctx); err != nil || len(log) != 6 {
		t.Fatalf("issuance log %d records, %v", len(log), err)
	}
	// Bad input gets an error, not a panic.
	for _, args := range [][]string{{}, {"--data-dir", walletDir}, {"--data-dir", walletDir, "--mint", "http://" + addr, "--amount", "0"}} {
		if err := WalletRequest(ctx, args, io.Discard, io.Discard); err == nil {
			t.Errorf("wallet request %q succeeded", args)
		}
	}
}

// TestChainCommands shows a stored chain of three blocks by two relays.
func TestChainCommands(t *testing.T) {
	ctx := context.Background()
	m := testMint(t, nil)
	ks := keySetOf(t, m)
	cs := credits(t, m, 10, 3)
	dir := t.TempDir()
	db, _ := OpenDB(dir)
	if err := db.SaveKeys(ctx, ks.Keys()); err != nil {
		t.Fatal(err)
	}
	p := DefaultParams(DefaultNetwork) // the commands' parameters: nothing matures yet
	ch, err := NewChain(ctx, DefaultParams(DefaultNetwork), ks, db)
	if err != nil {
		t.Fatal(err)
	}
	a, b := identity(t, 1), identity(t, 2)
	var prev *Block
	for i, c := range cs {
		id := a
		if i == 1 {
			id = b
		}
		prev = mkBlock(t, p, id, prev, testNowMs+uint64(i)*10_000, nil, pay(c, 7))
		if err := ch.Add(ctx, prev, testNowMs+1e6); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	run := func(cmd func(context.Context, []string, io.Writer, io.Writer) error, args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if err := cmd(ctx, append([]string{"--data-dir", dir}, args...), &out, io.Discard); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	st := run(Status)
	for _, want := range []string{"blocks 3 (forks included)", "tip height 3", "score 33", "matured 0 value 0"} {
		if !strings.Contains(st, want) {
			t.Errorf("status lacks %q:\n%s", want, st)
		}
	}
	bl := run(Blocks, "--limit", "2")
	if n := strings.Count(bl, "\n"); n != 3 || !strings.Contains(bl, b.Fingerprint().String()) {
		t.Errorf("blocks output:\n%s", bl)
	}
	rel := run(Relay, a.Fingerprint().String())
	var first bytes.Buffer
	if err := Relay(ctx, []string{a.Fingerprint().String(), "--data-dir", dir}, &first, io.Discard); err != nil || first.String() != rel {
		t.Errorf("relay FP --data-dir DIR: %v\n%s", err, first.String())
	}
	if !strings.Contains(rel, "best-chain blocks 2 credits 2 units 14") || !strings.Contains(rel, "window shares 20 payout 0") {
		t.Errorf("relay output:\n%s", rel)
	}
	if pay := run(Payouts); !strings.Contains(pay, "matured 0 of 3 blocks") {
		t.Errorf("payouts output:\n%s", pay)
	}
	if err := Relay(ctx, []string{"--data-dir", dir, "nothex"}, io.Discard, io.Discard); err == nil {
		t.Error("bad fingerprint accepted")
	}
}
