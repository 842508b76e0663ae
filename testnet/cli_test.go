package testnet

import (
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTestnetCommandUpStatusDown runs `unfed testnet up`, `status` and
// `down` as a user would: up returns with the network running in the
// background and prints the client line; down leaves nothing running.
func TestTestnetCommandUpStatusDown(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "net")
	unfed := filepath.Join(binDir, "unfed")
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(unfed, append([]string{"testnet"}, args...)...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("unfed testnet %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	model := modelPath(t)
	out := run("up", "--dir", dir, "--model", model, "--interval", "3s")
	t.Cleanup(func() {
		if n, err := Load(dir); err == nil {
			StopRecorded(n, 5*time.Second, io.Discard)
		}
	})
	if !strings.HasPrefix(out, "client api=http://127.0.0.1:") || !strings.Contains(out, " socks=127.0.0.1:") {
		t.Fatalf("up printed %q", out)
	}
	if st := run("status", "--dir", dir); !strings.Contains(st, "16 of 16 nodes up") {
		t.Fatalf("status:\n%s", st)
	}
	run("down", "--dir", dir)
	if st := run("status", "--dir", dir); !strings.Contains(st, "0 of 16 nodes up") {
		t.Fatalf("status after down:\n%s", st)
	}
}
