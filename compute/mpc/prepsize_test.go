package mpc

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// (the hook's callers, set below, name the gates: one layer of dealStage)

// TestPrepBreakdown says what a stage's PREP holds: the bytes of B's PREP
// (shares of dealt values, DPF keys of lookups, comparison keys) for one
// layer, by the dealing function that dealt them, for stories260K and the
// qwen2.5-0.5B shape at a decode step at positions 0, 31 and 255
// (docs/perf/confidential.md). It checks the pieces add up to the counted
// total.
func TestPrepBreakdown(t *testing.T) {
	defer func() { countHook = nil }()
	for _, sh := range []struct {
		name string
		c    Config
	}{{"stories260K", storiesShape}, {"qwen2.5-0.5B", qwenShape}} {
		for _, t0 := range []int{0, 31, 255} {
			by := map[string]int{}
			countHook = func(kind string, n int) {
				// the first caller in this package outside corr.go's
				// dealing methods names the gate
				pc := make([]uintptr, 12)
				k := runtime.Callers(3, pc)
				frames := runtime.CallersFrames(pc[:k])
				// the gate's dealing function and its caller
				var names []string
				for len(names) < 2 {
					f, more := frames.Next()
					fn := f.Function[strings.LastIndexByte(f.Function, '.')+1:]
					if !strings.HasPrefix(fn, "(*dealing)") && !strings.HasPrefix(fn, "func") {
						names = append(names, fn)
					}
					if !more {
						break
					}
				}
				name := strings.Join(names, "<")
				by[kind+" "+name] += n
			}
			masks := [][]uint64{make([]uint64, t0*2*sh.c.kvDim())}
			dl := &dealing{count: true}
			dealStage(dl, sh.c, Params{}.withDefaults(), t0, 1, masks)
			total, sum := dl.nShares+dl.nKeys, 0
			keys := make([]string, 0, len(by))
			for k, v := range by {
				keys = append(keys, k)
				sum += v
			}
			if sum != total || total == 0 {
				t.Fatalf("%s at %d: pieces add to %d, counted %d", sh.name, t0, sum, total)
			}
			slices.SortFunc(keys, func(a, b string) int { return by[b] - by[a] })
			var b strings.Builder
			for _, k := range keys {
				fmt.Fprintf(&b, " %s %.1f%%;", k, 100*float64(by[k])/float64(total))
			}
			t.Logf("%s, one layer, position %d: %d bytes:%s", sh.name, t0, total, b.String())
		}
	}
}
