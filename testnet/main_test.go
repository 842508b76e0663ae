package testnet

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"
)

// binDir holds the binaries built once for this test process.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "unfed-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	if err := Build(ctx, dir); err != nil {
		cancel()
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	cancel()
	binDir = dir
	code := m.Run()
	if err := stopTorNetwork(code == 0); err != nil {
		fmt.Fprintln(os.Stderr, "private Tor testnet: unclean shutdown:", err)
		code = 1
	}
	os.RemoveAll(dir)
	os.Exit(code)
}
