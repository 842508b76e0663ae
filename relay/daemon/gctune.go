package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"
)

// DefaultGCSlack is the garbage a daemon lets accumulate between
// collections at least (UNFED_GC_SLACK).
//
// Go's default pacing (GOGC=100) collects when the heap has grown by as much
// as is live. A relay's live heap is small (its weights are mapped from the
// model file, or a few tens of MB of fixed-point shares) while it allocates
// megabytes per token (PREPs, frames, activations), so it collected every few
// tokens, and between collections its scavenger gave the freed pages back to
// the kernel, which on the project's VMs costs 50-110 us per 4 KiB page to
// fault in again. In a confidential testnet a third of all CPU time was
// system time (docs/PERFORMANCE.md).
const DefaultGCSlack = 128 << 20

// gcPercentFor returns the GOGC that lets a heap with live bytes in use grow
// by at least slack before the next collection: 100 (Go's default) when live
// is at least slack, up to 2000 for a small heap.
func gcPercentFor(live, slack uint64) int {
	if live == 0 {
		return 2000
	}
	p := 100 * slack / live
	return int(min(max(p, 100), 2000))
}

// parseSize parses "128MiB", "64MB", "1GiB", "0" or a byte count.
func parseSize(s string) (uint64, error) {
	s = strings.TrimSpace(s)
	mult := uint64(1)
	for _, u := range []struct {
		suffix string
		mult   uint64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || (mult > 1 && n > (1<<63)/mult) {
		return 0, fmt.Errorf("not a size: %q (a number of bytes, or with KiB, MiB, GiB)", s)
	}
	return n * mult, nil
}

// tuneGC keeps GOGC at gcPercentFor(live heap, slack) until ctx ends,
// re-reading the live heap every period. It does nothing when the operator
// set GOGC, or with slack 0. A GOMEMLIMIT still bounds the heap: Go
// collects early near it whatever GOGC says.
func tuneGC(ctx context.Context, slack uint64, period time.Duration, log *slog.Logger) {
	if slack == 0 || os.Getenv("GOGC") != "" {
		return
	}
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	last := -1
	set := func() {
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindUint64 {
			return
		}
		if p := gcPercentFor(sample[0].Value.Uint64(), slack); p != last {
			debug.SetGCPercent(p)
			log.Debug("gc percent", "gogc", p, "live", sample[0].Value.Uint64())
			last = p
		}
	}
	set()
	go func() {
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				set()
			}
		}
	}()
}

// gcSlack reads UNFED_GC_SLACK (default DefaultGCSlack).
func gcSlack() (uint64, error) {
	v, ok := os.LookupEnv("UNFED_GC_SLACK")
	if !ok {
		return DefaultGCSlack, nil
	}
	n, err := parseSize(v)
	if err != nil {
		return 0, fmt.Errorf("UNFED_GC_SLACK: %w", err)
	}
	return n, nil
}
