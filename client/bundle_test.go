package client

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBundleOnlyClientInProcess: a client configured with authorities only
// fetches stories260K's bundle from a compute relay on first use, verifies
// it against the catalog, caches it, and generates what the local engine
// does; a second client on the same data directory uses the cache.
func TestBundleOnlyClientInProcess(t *testing.T) {
	n := sharedNet(t)
	const tokens = 16
	want := localGreedy(t, n.modelPath, tokens)
	dir := t.TempDir()
	mod := func(c *Config) { c.Models, c.Circuit.Mode = nil, string(ModeAnonymous) }
	rc := startClient(t, n, dir, mod)
	if got := rc.complete(t, n.modelID, tokens); got != want {
		t.Fatalf("bundle-only client generated %q\nlocal engine generated %q", got, want)
	}
	cached := filepath.Join(dir, "bundles", n.modelID+".bundle.gguf")
	if fi, err := os.Stat(cached); err != nil || fi.Size() != int64(len(n.bundle)) {
		t.Fatalf("bundle not cached: %v", err)
	}
	rc.stop()
	rc2 := startClient(t, n, dir, func(c *Config) { mod(c); c.Circuit.Mode = string(ModeConfidential) })
	if got := rc2.complete(t, n.modelID, 8); got != localGreedy(t, n.modelPath, 8) {
		t.Fatalf("confidential circuit from the cached bundle generated %q", got)
	}
}

// TestTamperedBundleRefused: relays serving a bundle with one byte of the
// embedding changed make the request fail with an error that says the
// bundle did not verify, and nothing is cached.
func TestTamperedBundleRefused(t *testing.T) {
	n := sharedNet(t)
	n.tamper.Store(true)
	defer n.tamper.Store(false)
	dir := t.TempDir()
	rc := startClient(t, n, dir, func(c *Config) { c.Models, c.Circuit.Mode = nil, string(ModeAnonymous) })
	status, _, msg := rc.post(t, "/v1/completions", map[string]any{"model": n.modelID, "prompt": testPrompt, "max_tokens": 4})
	if status == 200 || !strings.Contains(msg, "bundle") {
		t.Fatalf("tampered bundle: %d %q", status, msg)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "bundles"))
	if len(entries) != 0 {
		t.Fatalf("%d files left in the bundle cache after a refused bundle", len(entries))
	}
	// The same client takes the genuine bundle once relays serve it.
	n.tamper.Store(false)
	if status, _, msg := rc.post(t, "/v1/completions", map[string]any{"model": n.modelID, "prompt": testPrompt, "max_tokens": 4, "temperature": 0}); status != 200 {
		t.Fatalf("genuine bundle after a refused one: %d %q", status, msg)
	}
}
