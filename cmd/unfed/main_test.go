package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
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
	bin := buildUnfed(ctx, t)
	faucet, addr := start(ctx, t, "mint", bin, "sharechain", "faucet", "--data-dir", filepath.Join(dir, "mint"), "--listen", "127.0.0.1:0", "--denoms", "1,10")
	defer faucet.Process.Kill()
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

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// buildUnfed builds this command once per test binary.
func buildUnfed(ctx context.Context, t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "unfed-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "unfed")
		if out, err := exec.CommandContext(ctx, "go", "build", "-o", builtBin, ".").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builtBin != "" {
		os.RemoveAll(filepath.Dir(builtBin))
	}
	os.Exit(code)
}

// start runs bin with args and returns it with the address of its listening
// line of the given kind.
func start(ctx context.Context, t *testing.T, kind, bin string, args ...string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		t.Fatal(err)
	}
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening kind="+kind+" addr=")
	if !ok || !strings.HasPrefix(addr, "127.0.0.1:") {
		cmd.Process.Kill()
		t.Fatalf("listening line %q", line)
	}
	return cmd, addr
}
