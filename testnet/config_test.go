package testnet

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPrintConfigRoundTrip runs every daemon (dirauth, each relay role, the
// client) with a testnet's real configuration and --print-config, loads the
// printed YAML back with --config, and checks the second print equals the
// first: --print-config is a configuration file, not a report.
func TestPrintConfigRoundTrip(t *testing.T) {
	n, err := Generate(Spec{Dir: t.TempDir(), BinDir: binDir, Model: modelPath(t), Client: true})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, node := range n.Nodes {
		if seen[node.Role] {
			continue
		}
		seen[node.Role] = true
		bin := filepath.Join(binDir, binFor(node.Kind))
		first := printConfig(t, bin, node.Config)
		if !strings.Contains(first, `name: "auth1"`) {
			t.Errorf("%s: printed config lacks the authorities of its file:\n%s", node.Name, first)
		}
		again := filepath.Join(t.TempDir(), "printed.yaml")
		if err := os.WriteFile(again, []byte(first), 0o600); err != nil {
			t.Fatal(err)
		}
		if second := printConfig(t, bin, again); second != first {
			t.Errorf("%s (%s): the printed config does not load back unchanged:\n%s\n--- printed from it:\n%s", node.Name, node.Role, first, second)
		}
	}
	for _, role := range []string{"authority", "guard", "compute", "party", "dealer", "client"} {
		if !seen[role] {
			t.Errorf("no %s node in the testnet", role)
		}
	}
}

func printConfig(t *testing.T, bin, config string) string {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "--config", config, "--print-config")
	cmd.Stderr = &stderr
	cmd.Env = withoutUnfedEnv()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s --config %s --print-config: %v\n%s", filepath.Base(bin), config, err, stderr.String())
	}
	return string(out)
}

// withoutUnfedEnv is the environment minus UNFED_* variables, which would
// override the files under test.
func withoutUnfedEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "UNFED_") {
			env = append(env, kv)
		}
	}
	return env
}

// TestVersionAndHelpEverywhere: every binary answers --version, and
// --help works on every daemon and every unfed command and subcommand,
// exiting 0 and naming GNU-style flags.
func TestVersionAndHelpEverywhere(t *testing.T) {
	for _, prog := range []string{"dirauth", "unfed-relay", "unfed-client", "unfed"} {
		out, err := exec.Command(filepath.Join(binDir, prog), "--version").Output()
		if err != nil || !strings.HasPrefix(string(out), prog+" ") || !strings.Contains(string(out), "go1.") {
			t.Errorf("%s --version: %v %q", prog, err, out)
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"dirauth", "--help"}, "--metrics.listen"},
		{[]string{"unfed-relay", "--help"}, "--or.tcp"},
		{[]string{"unfed-client", "--help"}, "--api.listen"},
		{[]string{"unfed", "--help"}, "testnet"},
		{[]string{"unfed", "testnet", "--help"}, "status"},
		{[]string{"unfed", "testnet", "up", "--help"}, "--dir"},
		{[]string{"unfed", "testnet", "status", "--help"}, "--dir"},
		{[]string{"unfed", "testnet", "down", "--help"}, "--dir"},
		{[]string{"unfed", "testnet", "demo", "--help"}, "--mode"},
		{[]string{"unfed", "descriptor", "show", "--help"}, "FILE|URL"},
		{[]string{"unfed", "consensus", "show", "--help"}, "--authorities"},
		{[]string{"unfed", "keygen", "--help"}, "--data-dir"},
		{[]string{"unfed", "model", "info", "--help"}, "FILE"},
		{[]string{"unfed", "generate", "--help"}, "--max-tokens"},
		{[]string{"unfed", "audit", "--help"}, "--mode"},
	} {
		cmd := exec.Command(filepath.Join(binDir, c.args[0]), c.args[1:]...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("%s: %v\n%s", strings.Join(c.args, " "), err, out)
			continue
		}
		if !strings.Contains(string(out), c.want) {
			t.Errorf("%s: output lacks %q:\n%s", strings.Join(c.args, " "), c.want, out)
		}
		if strings.Contains(string(out), "\n  -") && !strings.Contains(string(out), "\n  --") {
			t.Errorf("%s: help shows one-dash flags:\n%s", strings.Join(c.args, " "), out)
		}
	}
}
