package relay_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/unfed/unfed/relay"
	"github.com/unfed/unfed/relay/daemon"
)

// TestPprofOffByDefault: a relay with the default configuration serves no
// profiles: no pprof listener, and none on the metrics listener either.
func TestPprofOffByDefault(t *testing.T) {
	if relay.DefaultConfig().Debug.PprofAddr != "" {
		t.Fatalf("default debug.pprof_addr = %q", relay.DefaultConfig().Debug.PprofAddr)
	}
	n := startRelay(t, testConfig(t, "g", "guard"))
	if a := n.addr("pprof"); a != "" {
		t.Fatalf("default relay announced a pprof listener at %s", a)
	}
	if code := httpGet(t, "http://"+n.addr("metrics")+"/debug/pprof/"); code != http.StatusNotFound {
		t.Fatalf("metrics listener /debug/pprof/ = %d, want 404", code)
	}
}

// TestPprofOn: with debug.pprof_addr the relay announces the listener and
// serves the goroutine profile of its own process there; a non-loopback
// address is refused before anything starts, unless explicitly allowed.
func TestPprofOn(t *testing.T) {
	cfg := testConfig(t, "g", "guard")
	cfg.Debug.PprofAddr = "127.0.0.1:0"
	n := startRelay(t, cfg)
	addr := n.addr("pprof")
	if addr == "" {
		t.Fatalf("no pprof listening line: %q", n.stdout.String())
	}
	resp, err := http.Get("http://" + addr + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "relay.Run") {
		t.Fatalf("goroutine profile = %d %.300q", resp.StatusCode, body)
	}

	bad := testConfig(t, "g2", "guard")
	bad.Debug.PprofAddr = "0.0.0.0:0"
	env := daemon.Env{Log: slog.New(slog.DiscardHandler), Stdout: io.Discard, Stderr: io.Discard}
	if err := relay.Run(context.Background(), bad, env); err == nil || !strings.Contains(err.Error(), "pprof") {
		t.Fatalf("relay with pprof on 0.0.0.0 = %v, want a refusal", err)
	}
}
