package testnet

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/unfed/unfed/compute/audit"
)

// auditPrompts are a few of the built-in prompts, to keep the run short.
var auditPrompts = []string{audit.Prompts[1], audit.Prompts[2], audit.Prompts[7]}

func runAudit(t *testing.T, mode string) *audit.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	rep, err := Audit(ctx, AuditOptions{Mode: mode, Model: modelPath(t), BinDir: binDir, Dir: t.TempDir(),
		Prompts: auditPrompts, MaxTokens: 3, Seed: 1}, &progress)
	t.Log("\n" + progress.String())
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	rep.WriteLines(&out)
	rep.WriteTable(&out)
	t.Log("\n" + out.String())
	return rep
}

func auditRoles(rep *audit.Report) map[string]*audit.Result {
	m := map[string]*audit.Result{}
	for _, r := range rep.Results {
		m[r.Role] = r
	}
	return m
}

// TestAuditAnonymous: in an anonymous circuit of real processes the first
// compute hop reads every prompt token, the next one recovers them from its
// activations and learns every generated token from the logits, and the
// guard learns nothing.
func TestAuditAnonymous(t *testing.T) {
	rep := runAudit(t, "anonymous")
	roles := auditRoles(rep)
	s0, s1, guard := roles["s0"], roles["s1"], roles["guard"]
	if s0 == nil || s1 == nil || guard == nil {
		t.Fatalf("roles %v", rep.Results)
	}
	if s0.Total == 0 || s0.Recovered != s0.Total || s1.Recovered < s1.Total*95/100 {
		t.Errorf("s0 recovered %d/%d, s1 %d/%d", s0.Recovered, s0.Total, s1.Recovered, s1.Total)
	}
	if s1.GenTotal == 0 || s1.GenRecovered != s1.GenTotal {
		t.Errorf("the last hop learned %d of %d generated tokens", s1.GenRecovered, s1.GenTotal)
	}
	if guard.Recovered != 0 || guard.GenRecovered != 0 {
		t.Errorf("the guard recovered %d tokens and %d generated", guard.Recovered, guard.GenRecovered)
	}
}

// TestAuditConfidential: in a confidential circuit of real processes no
// relay recovers more than chance, though every party saw shares and
// openings of every position.
func TestAuditConfidential(t *testing.T) {
	rep := runAudit(t, "confidential")
	roles := auditRoles(rep)
	for _, name := range []string{"guard", "d1", "a1", "b1", "d2", "a2", "b2"} {
		r := roles[name]
		if r == nil {
			t.Fatalf("no role %s in %v", name, rep.Results)
		}
		if r.Total == 0 || r.Recovered*50 > r.Total || r.GenRecovered > 1 {
			t.Errorf("%s recovered %d/%d, generated %d/%d", name, r.Recovered, r.Total, r.GenRecovered, r.GenTotal)
		}
		if (name[0] == 'a' || name[0] == 'b') && r.Vectors < 50*r.Total {
			t.Errorf("%s: only %d vectors captured and attacked", name, r.Vectors)
		}
	}
}

// TestAuditCommandUsage: the command refuses bad flags and reads prompts
// files in both forms.
func TestAuditCommandUsage(t *testing.T) {
	for _, args := range [][]string{{"--mode", "plain"}, {"--max-tokens", "0"}, {"extra"}} {
		if err := AuditCommand(context.Background(), args, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
	dir := t.TempDir()
	for name, c := range map[string]struct {
		body string
		want []string
	}{
		"p.json": {`["a\nb", "c"]`, []string{"a\nb", "c"}},
		"p.txt":  {"first prompt\n\n  \nsecond\r\n", []string{"first prompt", "second"}},
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(c.body), 0o600)
		got, err := ReadPrompts(p)
		if err != nil || fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s: %q, %v", name, got, err)
		}
	}
	empty := filepath.Join(dir, "empty.txt")
	os.WriteFile(empty, []byte("\n"), 0o600)
	if _, err := ReadPrompts(empty); err == nil || !strings.Contains(err.Error(), "no prompt") {
		t.Errorf("empty prompts file: %v", err)
	}
}
