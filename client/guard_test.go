package client

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/unfed/unfed/directory"
)

func guardNetwork(n int) []directory.RouterStatus {
	var rs []directory.RouterStatus
	for i := 0; i < n; i++ {
		rs = append(rs, status(100+i, "10.9.0.1:1", []directory.Flag{directory.FlagGuard}))
	}
	return rs
}

func TestGuardsPersistAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	rs := guardNetwork(30)
	g, err := LoadGuards(dir, GuardConfig{SampleSize: 5}, nil)
	if err != nil {
		t.Fatal(err)
	}
	first, err := g.Choose(rs)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Sampled()) != 5 {
		t.Fatalf("sampled %d guards, want 5", len(g.Sampled()))
	}
	for i := 0; i < 5; i++ {
		g2, err := LoadGuards(dir, GuardConfig{SampleSize: 5}, nil)
		if err != nil {
			t.Fatal(err)
		}
		again, err := g2.Choose(rs)
		if err != nil {
			t.Fatal(err)
		}
		if again.Fingerprint != first.Fingerprint {
			t.Fatalf("restart %d chose %s, want the same guard %s", i, again.Fingerprint, first.Fingerprint)
		}
	}
	st, _ := os.Stat(filepath.Join(dir, guardFile))
	if st.Mode().Perm() != 0o600 {
		t.Errorf("guard state mode %o", st.Mode().Perm())
	}
}

func TestGuardFailoverAndRetry(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rs := guardNetwork(10)
	g, _ := LoadGuards(t.TempDir(), GuardConfig{SampleSize: 4, Primary: 2, RetryAfter: time.Minute}, func() time.Time { return now })
	a, _ := g.Choose(rs)
	g.MarkFailed(a.Fingerprint)
	b, _ := g.Choose(rs)
	if b.Fingerprint == a.Fingerprint {
		t.Fatal("failed guard chosen again at once")
	}
	now = now.Add(2 * time.Minute)
	c, _ := g.Choose(rs)
	if c.Fingerprint != a.Fingerprint {
		t.Fatal("first primary guard not retried after its back-off")
	}
}

func TestGuardDroppedFromConsensus(t *testing.T) {
	rs := guardNetwork(6)
	g, _ := LoadGuards(t.TempDir(), GuardConfig{SampleSize: 6}, nil)
	a, _ := g.Choose(rs)
	var rest []directory.RouterStatus
	for _, r := range rs {
		if r.Fingerprint != a.Fingerprint {
			rest = append(rest, r)
		}
	}
	b, err := g.Choose(rest)
	if err != nil || b.Fingerprint == a.Fingerprint {
		t.Fatalf("unlisted guard still chosen: %v %v", b, err)
	}
	if _, err := g.Choose(nil); err == nil {
		t.Fatal("chose a guard from an empty consensus")
	}
}

func TestGuardStateCorrupt(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, guardFile), []byte("{not json"), 0o600)
	if _, err := LoadGuards(dir, GuardConfig{}, nil); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("corrupt state: %v", err)
	}
	os.WriteFile(filepath.Join(dir, guardFile), []byte(`{"version":1,"sampled":[{"fingerprint":"XYZ"}]}`), 0o600)
	if _, err := LoadGuards(dir, GuardConfig{}, nil); err == nil {
		t.Fatal("bad fingerprint accepted")
	}
}
