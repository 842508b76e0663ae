package testnet

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/unfed/unfed/relay/keys"
)

// TestDaemonsStartServeHealthAndStopCleanly starts each daemon with an empty
// data directory, waits for its listening lines, checks /healthz and /metrics,
// and stops it with SIGTERM, expecting exit code 0.
func TestDaemonsStartServeHealthAndStopCleanly(t *testing.T) {
	for _, tc := range []struct {
		bin   string
		kinds []string
	}{
		{"unfed-relay", []string{"metrics"}},
		{"unfed-client", []string{"metrics", "api"}},
		{"dirauth", []string{"metrics", "dir"}},
	} {
		t.Run(tc.bin, func(t *testing.T) {
			dir := t.TempDir()
			dataDir := filepath.Join(dir, "data")
			args := []string{"--data-dir", dataDir, "--metrics.listen", "127.0.0.1:0"}
			if tc.bin == "dirauth" {
				// An authority needs the authority list, itself included.
				store, err := keys.Open(dataDir, keys.Options{})
				if err != nil {
					t.Fatal(err)
				}
				cfg := filepath.Join(dir, "dirauth.yaml")
				yaml := "listen: 127.0.0.1:0\ninterval: 4s\nauthorities:\n  - name: solo\n    identity: " +
					base64.StdEncoding.EncodeToString(store.Identity().Public) + "\n    address: 127.0.0.1:1\n"
				if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--config", cfg)
			}
			if tc.bin == "unfed-client" {
				// A client needs authorities to trust and a local model; with
				// the authority unreachable it runs but is not ready.
				cfg := filepath.Join(dir, "client.yaml")
				yaml := "authorities:\n  - name: a\n    identity: " + base64.StdEncoding.EncodeToString(make([]byte, 32)) +
					"\n    address: 127.0.0.1:1\napi: {listen: 127.0.0.1:0}\nsocks: {listen: 127.0.0.1:0}\nmodels: [{path: " + modelPath(t) + "}]\n"
				if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--config", cfg)
			}
			p, err := StartProc(tc.bin, filepath.Join(binDir, tc.bin), args, dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Kill()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			ls, err := p.WaitListening(ctx, tc.kinds...)
			if err != nil {
				t.Fatal(err)
			}
			for _, path := range []string{"/healthz", "/metrics"} {
				resp, err := http.Get("http://" + ls["metrics"] + path)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				// A client without a consensus is alive but not ready: 503.
				notReady := tc.bin == "unfed-client" && path == "/healthz" && resp.StatusCode == 503
				if resp.StatusCode != 200 && !notReady {
					t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
				}
				if path == "/metrics" {
					if !strings.Contains(string(body), "go_goroutines") {
						t.Fatalf("/metrics lacks runtime metrics")
					}
					if err := lintMetricsText(string(body)); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := p.Stop(10 * time.Second); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(dataDir); err != nil {
				t.Fatalf("data dir not created: %v", err)
			}
		})
	}
}

func TestKeygenCommand(t *testing.T) {
	dir := t.TempDir()
	run := func(args ...string) (string, error) {
		var stderr strings.Builder
		cmd := exec.Command(filepath.Join(binDir, "unfed"), args...)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return strings.TrimSpace(string(out) + stderr.String()), err
		}
		return strings.TrimSpace(string(out)), nil
	}
	fp1, err := run("keygen", "--data-dir", dir)
	if err != nil {
		t.Fatalf("keygen: %v: %s", err, fp1)
	}
	if _, err := keys.ParseFingerprint(fp1); err != nil {
		t.Fatalf("keygen printed %q: %v", fp1, err)
	}
	fp2, err := run("keygen", "--data-dir", dir)
	if err != nil || fp2 != fp1 {
		t.Fatalf("second keygen = %q, %v; want the same fingerprint %q", fp2, err, fp1)
	}
	os.Chmod(filepath.Join(dir, keys.KeysDir, "identity_ed25519.key"), 0o644)
	if out, err := run("keygen", "--data-dir", dir); err == nil || !strings.Contains(out, "mode") {
		t.Fatalf("keygen with a 0644 key: %v %q, want a mode error", err, out)
	}
}

func TestDaemonConfigErrors(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "relay.yaml")
	os.WriteFile(cfg, []byte("data_dir: "+dir+"\nmetrics:\n  listne: 127.0.0.1:0\n"), 0o600)
	out, err := exec.Command(filepath.Join(binDir, "unfed-relay"), "--config", cfg).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Fatalf("exit = %v, want code 2; output %s", err, out)
	}
	if !strings.Contains(string(out), `did you mean "metrics.listen"`) {
		t.Fatalf("output lacks the suggestion: %s", out)
	}
}

// lintMetricsText checks a /metrics page: every metric family is under the
// unfed namespace (or the Go runtime's, the process collector's and the
// Prometheus handler's own), has help text, and every counter ends in _total.
func lintMetricsText(page string) error {
	var problems []string
	helped := map[string]bool{}
	for _, line := range strings.Split(page, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == "#" && f[1] == "HELP" {
			helped[f[2]] = len(f) > 3
		}
		if len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			name, typ := f[2], f[3]
			ok := false
			for _, p := range []string{"unfed_", "go_", "process_", "promhttp_"} {
				ok = ok || strings.HasPrefix(name, p)
			}
			if !ok {
				problems = append(problems, name+": not under the unfed namespace")
			}
			if typ == "counter" && !strings.HasSuffix(name, "_total") {
				problems = append(problems, name+": a counter not ending in _total")
			}
			if !helped[name] {
				problems = append(problems, name+": no help text")
			}
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("metric lint: %s", strings.Join(problems, "; "))
	}
	return nil
}
