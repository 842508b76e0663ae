package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
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

// maxGCPercent bounds the GOGC the tuner sets.
const maxGCPercent = 100_000

// heapMinimum is Go's smallest heap goal at GOGC=100 (4 MiB): the runtime
// never sets a goal below heapMinimum × GOGC/100, whatever is live, so
// a live heap under it is counted as heapMinimum. (Counted as it is, an
// empty heap at start with its GOGC of 100,000 was let grow to 4 GB of
// fresh pages before the first collection.)
const heapMinimum = 4 << 20

// gcPercentFor returns the GOGC that makes the next collection's goal
// live + slack for a heap with live bytes marked by the last one: 100 (Go's
// default) when live is at least slack, more for a smaller heap, at most
// maxGCPercent.
func gcPercentFor(live, slack uint64) int {
	live = max(live, heapMinimum)
	if slack/live >= maxGCPercent/100 {
		return maxGCPercent
	}
	p := 100*(slack/live) + 100*(slack%live)/live // no overflow: slack%live < live
	return int(max(p, 100))
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
// re-reading the live heap after every collection, so that each
// collection's goal is the heap it just marked plus slack. (Read every few
// seconds instead, a percent for one cycle's live heap applied to the next
// one's: with live heaps of 4-9 MB the goal swung between 80 and 190 MB, the
// scavenger returned what a lower goal left over, and a party faulted in
// 2,000-4,800 pages a second.) It does nothing when the operator set GOGC,
// or with slack 0. A GOMEMLIMIT still bounds the heap: Go collects early
// near it whatever GOGC says.
func tuneGC(ctx context.Context, slack uint64, log *slog.Logger) {
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
	afterEachGC(ctx, set)
}

// gcSentinel is an object nothing references, whose finalizer tells that a
// collection has run. It holds a pointer so that it is not one of the tiny
// allocator's blocks, whose finalizers may never run.
type gcSentinel struct{ _ *byte }

// afterEachGC calls f (on the finalizer goroutine) after every garbage
// collection until ctx ends.
func afterEachGC(ctx context.Context, f func()) {
	var arm func()
	arm = func() {
		runtime.SetFinalizer(&gcSentinel{}, func(*gcSentinel) {
			if ctx.Err() != nil {
				return
			}
			f()
			arm()
		})
	}
	arm()
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
