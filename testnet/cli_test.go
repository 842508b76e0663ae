package testnet

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/unfed/unfed/compute/tinymodels"
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

// TestResolveModelOffline: with no --model and no UNFED_MODEL_DIR, the
// testnet runs the stories260K copy built into the binary, checked against
// its SHA-256, with no network; an altered copy in UNFED_MODEL_DIR is refused.
func TestResolveModelOffline(t *testing.T) {
	t.Setenv("UNFED_MODEL_DIR", "")
	dir := filepath.Join(t.TempDir(), "models")
	p, err := ResolveModel(context.Background(), "", dir, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if p != filepath.Join(dir, "stories260K.gguf") {
		t.Fatalf("resolved %s", p)
	}
	if err := tinymodels.Verify(p); err != nil {
		t.Fatal(err)
	}
	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, "stories260K.gguf"), []byte("GGUF but not the model"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("UNFED_MODEL_DIR", bad)
	if _, err := ResolveModel(context.Background(), "", dir, io.Discard); err == nil || !strings.Contains(err.Error(), "SHA-256 mismatch") {
		t.Fatalf("altered model in UNFED_MODEL_DIR: %v", err)
	}
}
