package testnet

import (
	"context"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/unfed/unfed/relay/keys"
)

// TestDaemonRefusesDamagedKeys (issue 22 item 7): the real binaries stop,
// with a non-zero exit and a message saying why, on a data directory whose
// identity key has a flipped bit, whose identity key is gone (the
// fingerprint file remembers it), or that others can write; keygen too.
func TestDaemonRefusesDamagedKeys(t *testing.T) {
	run := func(bin string, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, filepath.Join(binDir, bin), args...).CombinedOutput()
		return string(out), err
	}
	fresh := func() string {
		dir := filepath.Join(t.TempDir(), "data")
		if out, err := run("unfed", "keygen", "--data-dir", dir); err != nil {
			t.Fatalf("keygen: %v: %s", err, out)
		}
		return dir
	}
	idPath := func(dir string) string { return filepath.Join(dir, keys.KeysDir, "identity_ed25519.key") }
	for _, tc := range []struct {
		name, want string
		damage     func(dir string)
	}{
		{"flipped bit", "corrupt", func(dir string) {
			b, _ := os.ReadFile(idPath(dir))
			block, _ := pem.Decode(b)
			block.Bytes[5] ^= 0x10
			os.WriteFile(idPath(dir), pem.EncodeToMemory(block), 0o600)
		}},
		{"deleted identity", "identity this data directory held is missing", func(dir string) { os.Remove(idPath(dir)) }},
		{"group-writable data dir", "mode", func(dir string) { os.Chmod(dir, 0o770) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := fresh()
			tc.damage(dir)
			for _, cmd := range [][]string{
				{"unfed", "keygen", "--data-dir", dir},
				{"unfed-relay", "--data-dir", dir, "--metrics.listen", "127.0.0.1:0"},
			} {
				out, err := run(cmd[0], cmd[1:]...)
				if err == nil || !strings.Contains(out, tc.want) {
					t.Fatalf("%s on a %s: err %v, output %q; want a failure saying %q", cmd[0], tc.name, err, out, tc.want)
				}
			}
			if tc.name == "deleted identity" {
				if _, err := os.Stat(idPath(dir)); err == nil {
					t.Fatal("a new identity key was written")
				}
			}
		})
	}
}
