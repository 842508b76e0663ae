package daemon

import (
	"context"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"testing"
	"time"
)

func TestGCPercentFor(t *testing.T) {
	for _, c := range []struct {
		live, slack uint64
		want        int
	}{
		{0, 128 << 20, 2000},
		{32 << 20, 128 << 20, 400},
		{1 << 20, 128 << 20, 2000},  // capped
		{128 << 20, 128 << 20, 100}, // Go's default from here on
		{800 << 20, 128 << 20, 100}, // never below it
		{100 << 20, 150 << 20, 150},
	} {
		if got := gcPercentFor(c.live, c.slack); got != c.want {
			t.Errorf("gcPercentFor(%d, %d) = %d, want %d", c.live, c.slack, got, c.want)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]uint64{"0": 0, "4096": 4096, "128MiB": 128 << 20, "1 GiB": 1 << 30, "64MB": 64e6, "2KiB": 2048} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "12XB", "MiB", "99999999999999GiB"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) accepted", in)
		}
	}
}

// TestTuneGC: without GOGC in the environment the tuner sets the percent
// for the live heap; with GOGC set, or a slack of 0, it leaves it alone.
func TestTuneGC(t *testing.T) {
	prev := debug.SetGCPercent(100)
	defer debug.SetGCPercent(prev)
	gogc, had := os.LookupEnv("GOGC")
	os.Unsetenv("GOGC")
	defer func() {
		if had {
			os.Setenv("GOGC", gogc)
		}
	}()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	tuneGC(ctx, 0, time.Hour, log)
	if p := debug.SetGCPercent(100); p != 100 {
		t.Fatalf("slack 0 set GOGC %d", p)
	}
	// A slack of 1 TiB is more than 20 × any test's live heap.
	tuneGC(ctx, 1<<40, time.Hour, log)
	if p := debug.SetGCPercent(100); p != 2000 {
		t.Fatalf("tuned GOGC %d, want 2000", p)
	}
	os.Setenv("GOGC", "100")
	defer os.Unsetenv("GOGC")
	tuneGC(ctx, 1<<40, time.Hour, log)
	if p := debug.SetGCPercent(100); p != 100 {
		t.Fatalf("with GOGC set the tuner changed it to %d", p)
	}
	os.Setenv("UNFED_GC_SLACK", "lots")
	defer os.Unsetenv("UNFED_GC_SLACK")
	if _, err := gcSlack(); err == nil {
		t.Fatal("UNFED_GC_SLACK=lots accepted")
	}
}
