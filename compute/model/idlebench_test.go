package model

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/unfed/unfed/compute/modeltest"
)

// BenchmarkShardPrefillAfterIdle is what a compute relay of an anonymous
// circuit does per request (issue 16's TTFT): a new session on the
// stories260K shard [0, 3), one pass over 128 rows of activations, the
// session closed; back to back, and with 200 ms idle between requests (the
// rest of the circuit and the client working), spinning instead (a core
// kept busy), or with the caches flushed by 64 MiB of other work. Only the
// passes are timed; the process's CPU time and minor page faults during
// them are reported too (CPU above wall time is other threads: workers,
// the garbage collector).
//
//	go test ./compute/model -run '^$' -bench ShardPrefillAfterIdle -benchtime 20x
func BenchmarkShardPrefillAfterIdle(b *testing.B) {
	path := modeltest.Path(b, "stories260K.gguf")
	for _, threads := range []int{1, 2} {
		sh, err := Load(path, ShardOptions{First: 0, Last: 3, Threads: threads})
		if err != nil {
			b.Fatal(err)
		}
		defer sh.Close()
		const rows = 128
		x := make([]float32, rows*sh.Config().Dim)
		for i := range x {
			x[i] = float32(i%97)/97 - 0.5
		}
		for _, c := range idleCases {
			b.Run(fmt.Sprintf("threads=%d/%s", threads, c.name), func(b *testing.B) {
				var busy time.Duration
				var faults, cpu int64
				for i := 0; i < b.N; i++ {
					c.idle()
					f0, c0 := minorFaults(), cpuNanos()
					t := time.Now()
					ss, err := sh.NewSession(SessionOptions{})
					if err != nil {
						b.Fatal(err)
					}
					if _, err := ss.ForwardActivations(x, rows, 0); err != nil {
						b.Fatal(err)
					}
					ss.Close()
					busy += time.Since(t)
					faults += minorFaults() - f0
					cpu += cpuNanos() - c0
				}
				b.ReportMetric(float64(busy.Microseconds())/float64(b.N)/1000, "ms/pass")
				b.ReportMetric(float64(faults)/float64(b.N), "faults/pass")
				b.ReportMetric(float64(cpu)/1e6/float64(b.N), "ms-cpu/pass")
			})
		}
	}
}

var thrashBuf = make([]byte, 64<<20)

// idleCases are what happens between two requests.
var idleCases = []struct {
	name string
	idle func()
}{
	{"back-to-back", func() {}},
	{"sleep200ms", func() { time.Sleep(200 * time.Millisecond) }},
	{"spin200ms", func() { spin(200 * time.Millisecond) }},
	{"sleep200ms+thrash", func() { time.Sleep(200 * time.Millisecond); thrash() }},
}

func spin(d time.Duration) {
	for t := time.Now(); time.Since(t) < d; {
	}
}

// thrash reads and writes 64 MiB, pushing the shard's weights out of every
// cache level, as other processes on the machine do.
func thrash() {
	for i := 0; i < len(thrashBuf); i += 64 {
		thrashBuf[i]++
	}
}

func minorFaults() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Minflt
}

func cpuNanos() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}
