package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestEconomyCommandsRealProcesses builds unfed, starts `unfed sharechain
// faucet` on 127.0.0.1, fills a wallet with `unfed wallet request`, reads it
// back with `unfed wallet balance`, and stops the faucet with SIGTERM,
// expecting a clean exit.
func TestEconomyCommandsRealProcesses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "unfed")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	faucet := exec.CommandContext(ctx, bin, "sharechain", "faucet", "--data-dir", filepath.Join(dir, "mint"), "--listen", "127.0.0.1:0", "--denoms", "1,10")
	faucet.Stderr = os.Stderr
	stdout, err := faucet.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := faucet.Start(); err != nil {
		t.Fatal(err)
	}
	defer faucet.Process.Kill()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening kind=mint addr=")
	if !ok {
		t.Fatalf("listening line %q", line)
	}
	wallet := filepath.Join(dir, "wallet")
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("unfed %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if out := run("wallet", "request", "--data-dir", wallet, "--mint", "http://"+addr, "--amount", "42"); !strings.Contains(out, "received 42 units in 6 credits") {
		t.Fatalf("request: %q", out)
	}
	if out := run("wallet", "balance", "--data-dir", wallet); out != "balance 42 units\n  4 x 10\n  2 x 1\n" {
		t.Fatalf("balance: %q", out)
	}
	if err := faucet.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := faucet.Wait(); err != nil {
		t.Fatalf("faucet did not exit cleanly: %v", err)
	}
}
