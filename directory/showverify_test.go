package directory_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unfed/unfed/directory"
)

// vectorAuthoritiesYAML turns the vector's authority lines into a daemon
// configuration's authorities list; swap replaces auth1's identity.
func vectorAuthoritiesYAML(t *testing.T, swap string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(vectorDir, "authorities.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var y strings.Builder
	y.WriteString("data_dir: data\nauthorities:\n")
	for _, ln := range strings.Split(string(b), "\n") {
		f := strings.Fields(ln)
		if len(f) < 3 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if f[0] == "auth1" && swap != "" {
			f[2] = swap
		}
		fmt.Fprintf(&y, "  - name: %s\n    address: %q\n    identity: %q\n", f[0], f[1], f[2])
	}
	return y.String()
}

func showVerify(args ...string) (string, error) {
	var out, errOut bytes.Buffer
	err := directory.ConsensusShow(context.Background(), args, &out, &errOut)
	return out.String() + errOut.String(), err
}

// TestConsensusShowVerifyConfigAndTestnet: --verify takes its authorities
// from a daemon configuration file or a testnet directory, and fails when
// they are not the signers or when none are given.
func TestConsensusShowVerifyConfigAndTestnet(t *testing.T) {
	atRaw, err := os.ReadFile(filepath.Join(vectorDir, "consensus-verify-at.txt"))
	if err != nil {
		t.Fatal(err)
	}
	at := strings.TrimSpace(string(atRaw))
	cons := filepath.Join(vectorDir, "consensus.txt")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "relay.yaml")
	if err := os.WriteFile(cfg, []byte(vectorAuthoritiesYAML(t, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := showVerify("--verify", "--authorities", cfg, "--at", at, cons); err != nil || !strings.Contains(out, "verified: signed by at least 2 of 3") {
		t.Fatalf("config file: %v\n%s", err, out)
	}
	// A testnet directory: the client's configuration holds the authorities.
	net := filepath.Join(dir, "net")
	if err := os.MkdirAll(filepath.Join(net, "client"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(net, "client", "config.yaml"), []byte(vectorAuthoritiesYAML(t, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := showVerify("--verify", "--testnet", net, "--at", at, cons); err != nil || !strings.Contains(out, "verified") {
		t.Fatalf("testnet dir: %v\n%s", err, out)
	}
	// Trusting other keys for two of the three: their signatures no longer
	// count, and the consensus does not verify.
	swapped := strings.ReplaceAll(vectorAuthoritiesYAML(t, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="),
		"Xew23RjAG6X3tLaXCDnaGJ25sawyqLqdlDXzTmJl/Vc", "AQECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
	if err := os.WriteFile(filepath.Join(net, "client", "config.yaml"), []byte(swapped), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := showVerify("--verify", "--testnet", net, "--at", at, cons); err == nil {
		t.Fatalf("verified against authorities two of which did not sign:\n%s", out)
	}
	if _, err := showVerify("--verify", cons); err == nil || !strings.Contains(err.Error(), "--verify needs") {
		t.Fatalf("--verify without authorities: %v", err)
	}
	if _, err := showVerify("--verify", "--testnet", t.TempDir(), cons); err == nil || !strings.Contains(err.Error(), "no configuration listing authorities") {
		t.Fatalf("empty testnet dir: %v", err)
	}
}

// FuzzParseAuthorities: the trusted-authorities reader takes any bytes, as
// a configuration file or as authority lines, without panicking.
func FuzzParseAuthorities(f *testing.F) {
	lines, _ := os.ReadFile(filepath.Join(vectorDir, "authorities.txt"))
	f.Add("a.txt", lines)
	f.Add("c.yaml", []byte("authorities:\n  - name: a\n    identity: Xew23RjAG6X3tLaXCDnaGJ25sawyqLqdlDXzTmJl/Vc\n    address: 127.0.0.1:1\n"))
	f.Add("c.toml", []byte("[[authorities]]\nname = \"a\"\nidentity = \"x\"\n"))
	f.Add("c.yaml", []byte("authorities: 7\n"))
	f.Fuzz(func(t *testing.T, name string, b []byte) {
		p := filepath.Join(t.TempDir(), filepath.Base("x"+name))
		if err := os.WriteFile(p, b, 0o600); err != nil {
			return
		}
		set, err := directory.ReadAuthorityFileForTest(p)
		if err == nil && len(set.Authorities) == 0 {
			t.Fatal("no error and no authorities")
		}
	})
}

// TestModelNameParsing: the optional fifth argument of a catalog line is a
// DNS-label name, unique regardless of case; anything else is refused.
func TestModelNameParsing(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(vectorDir, "consensus.txt"))
	if err != nil {
		t.Fatal(err)
	}
	line := "model stories260K llama 5 " + strings.Repeat("ab", 32)
	if !bytes.Contains(raw, []byte(line+" stories\n")) {
		t.Fatalf("vector lacks the named model line")
	}
	u, err := directory.ParseConsensus(raw)
	if err != nil || u.Unchecked().Models[0].Name != "stories" {
		t.Fatalf("named model: %v", err)
	}
	for _, bad := range []string{"under_score", "-dash", "dot.ted", strings.Repeat("a", 64)} {
		b := bytes.Replace(raw, []byte(line+" stories\n"), []byte(line+" "+bad+"\n"), 1)
		if _, err := directory.ParseConsensus(b); err == nil || !strings.Contains(err.Error(), "model name") {
			t.Errorf("name %q: %v", bad, err)
		}
	}
	// Without a name the entry still parses (the name is optional).
	b := bytes.Replace(raw, []byte(line+" stories\n"), []byte(line+"\n"), 1)
	if u, err := directory.ParseConsensus(b); err != nil || u.Unchecked().Models[0].Name != "" {
		t.Errorf("unnamed model: %v", err)
	}
	for _, ok := range []string{"stories260K", "a", "Qwen2-5-0-5B"} {
		if !directory.ValidModelName(ok) {
			t.Errorf("%q refused", ok)
		}
	}
}
