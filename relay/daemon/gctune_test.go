package daemon

import (
	"context"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestGCPercentFor(t *testing.T) {
	for _, c := range []struct {
		live, slack uint64
		want        int
	}{
		{0, 128 << 20, 3200}, // Go's heap minimum: a goal of 4 MiB × 32
		{32 << 20, 128 << 20, 400},
		{1 << 20, 128 << 20, 3200},
		{5 << 20, 128 << 20, 2560},
		{4 << 20, 1 << 40, maxGCPercent}, // capped
		{6 << 20, 20 << 20, 333},
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
	withoutGOGC(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	tuneGC(ctx, 0, log)
	if p := debug.SetGCPercent(100); p != 100 {
		t.Fatalf("slack 0 set GOGC %d", p)
	}
	// A slack of 1 TiB is more than 1000 × any test's live heap.
	tuneGC(ctx, 1<<40, log)
	if p := debug.SetGCPercent(100); p != maxGCPercent {
		t.Fatalf("tuned GOGC %d, want %d", p, maxGCPercent)
	}
	os.Setenv("GOGC", "100")
	defer os.Unsetenv("GOGC")
	tuneGC(ctx, 1<<40, log)
	if p := debug.SetGCPercent(100); p != 100 {
		t.Fatalf("with GOGC set the tuner changed it to %d", p)
	}
	os.Setenv("UNFED_GC_SLACK", "lots")
	defer os.Unsetenv("UNFED_GC_SLACK")
	if _, err := gcSlack(); err == nil {
		t.Fatal("UNFED_GC_SLACK=lots accepted")
	}
}

// TestTuneGCAfterEachCollection: the percent follows the live heap of the
// last collection, so a heap that grows gets a percent for its new size at
// its next collection, not seconds later.
func TestTuneGCAfterEachCollection(t *testing.T) {
	withoutGOGC(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const slack = 256 << 20
	runtime.GC()
	tuneGC(ctx, slack, slog.New(slog.NewTextHandler(io.Discard, nil)))
	before := gogcPercent(t)
	if before < 1000 {
		t.Fatalf("GOGC %d for this test's small heap and a slack of 256 MiB", before)
	}
	// The goal is about the slack, not Go's heap minimum (4 MiB) times a
	// percent made for a heap smaller than that.
	if goal := readUint(t, "/gc/heap/goal:bytes"); goal > slack+64<<20 {
		t.Fatalf("heap goal %d MiB with a slack of 256 MiB", goal>>20)
	}
	live := make([]byte, 64<<20)
	for i := range live {
		live[i] = byte(i)
	}
	runtime.GC()
	deadline := time.Now().Add(10 * time.Second)
	for gogcPercent(t) > 400 {
		if time.Now().After(deadline) {
			t.Fatalf("GOGC still %d after a collection with 64 MiB live (want at most 400, for live + 256 MiB)", gogcPercent(t))
		}
		runtime.GC() // the finalizer runs after a collection, on its own goroutine
		time.Sleep(10 * time.Millisecond)
	}
	runtime.KeepAlive(live)
}

func gogcPercent(t *testing.T) int { return int(readUint(t, "/gc/gogc:percent")) }

func readUint(t *testing.T, name string) uint64 {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		t.Fatalf("no %s metric", name)
	}
	return s[0].Value.Uint64()
}

// withoutGOGC runs the rest of the test with GOGC unset and restores it, and
// the GC percent, at its end.
func withoutGOGC(t *testing.T) {
	prev := debug.SetGCPercent(100)
	gogc, had := os.LookupEnv("GOGC")
	os.Unsetenv("GOGC")
	t.Cleanup(func() {
		debug.SetGCPercent(prev)
		if had {
			os.Setenv("GOGC", gogc)
		}
	})
}
