//go:build linux

package model

// BenchmarkLlamaBench mirrors llama.cpp's llama-bench on the synthetic models
// of real shapes: pp128 is a prefill of 128 tokens into an empty session
// (logits of the last position only, as llama-bench computes them), tg64 is
// 64 single-token decode steps from position 0.
//
//	UNFED_BENCH_MODELS=/tmp/models go test ./compute/model -run '^$' -bench LlamaBench -benchtime 3x
//
// UNFED_BENCH_MODELS names a directory where the model files are generated
// once and reused (default: a temporary directory per run). A prefill
// before the timed loop faults the weights in, as llama-bench's warm-up run.

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/unfed/unfed/compute/synth"
	"github.com/unfed/unfed/compute/tensor"
)

// benchModel returns the path of a synthetic model, generating it if needed.
func benchModel(b *testing.B, shape string, dt tensor.DType) string {
	dir := os.Getenv("UNFED_BENCH_MODELS")
	if dir == "" {
		dir = b.TempDir()
	}
	path := filepath.Join(dir, fmt.Sprintf("%s-%s.gguf", shape, dt))
	if _, err := os.Stat(path); err == nil {
		return path
	}
	tmp := path + ".tmp"
	if err := synth.WriteFile(tmp, synth.Options{Shape: synth.Shapes[shape], DType: dt, Seed: 1}); err != nil {
		b.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		b.Fatal(err)
	}
	return path
}

// cpuClock measures CPU time: of the calling OS thread (locked to it) for
// one-thread runs, where the whole forward pass runs on it, and of the
// process otherwise. On a machine shared with other work, tokens per CPU
// second is what the engine does while it has the cores; tok/s is the wall
// clock.
type cpuClock struct {
	who   int
	start time.Duration
}

func startCPU(threads int) *cpuClock {
	c := &cpuClock{who: syscall.RUSAGE_SELF}
	if threads == 1 {
		runtime.LockOSThread()
		c.who = 1 // RUSAGE_THREAD
	}
	c.start = c.now()
	return c
}

func (c *cpuClock) now() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(c.who, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (c *cpuClock) stop() time.Duration {
	d := c.now() - c.start
	if c.who != syscall.RUSAGE_SELF {
		runtime.UnlockOSThread()
	}
	return d
}

func BenchmarkLlamaBench(b *testing.B) {
	for _, c := range []struct {
		shape string
		dt    tensor.DType
	}{{"qwen2.5-0.5b", tensor.Q8_0}, {"llama-110m", tensor.F32}} {
		for _, th := range []int{1, 2} {
			var sh *Shard
			load := func(b *testing.B) (*Shard, int) {
				if sh == nil {
					var err error
					if sh, err = Load(benchModel(b, c.shape, c.dt), ShardOptions{Threads: th}); err != nil {
						b.Fatal(err)
					}
				}
				return sh, sh.Config().Vocab
			}
			b.Run(fmt.Sprintf("%s-%s/pp128/threads%d", c.shape, c.dt, th), func(b *testing.B) {
				sh, vocab := load(b)
				ids := make([]int, 128)
				for i := range ids {
					ids[i] = (i*7919 + 1) % vocab
				}
				warm, _ := sh.NewSession(SessionOptions{}) // fault the weights in, untimed
				if _, err := warm.ForwardTokens(ids, 0); err != nil {
					b.Fatal(err)
				}
				warm.Close()
				clk := startCPU(th)
				for b.Loop() {
					ss, _ := sh.NewSession(SessionOptions{})
					if _, err := ss.ForwardTokens(ids, 0); err != nil {
						b.Fatal(err)
					}
					ss.Close()
				}
				cpu := clk.stop()
				b.ReportMetric(float64(b.N*len(ids))/b.Elapsed().Seconds(), "tok/s")
				b.ReportMetric(float64(b.N*len(ids))/cpu.Seconds(), "tok/cpu-s")
			})
			b.Run(fmt.Sprintf("%s-%s/tg64/threads%d", c.shape, c.dt, th), func(b *testing.B) {
				sh, vocab := load(b)
				clk := startCPU(th)
				for b.Loop() {
					ss, _ := sh.NewSession(SessionOptions{})
					for p := 0; p < 64; p++ {
						if _, err := ss.ForwardTokens([]int{(p*7919 + 1) % vocab}, p); err != nil {
							b.Fatal(err)
						}
					}
					ss.Close()
				}
				cpu := clk.stop()
				b.ReportMetric(float64(b.N*64)/b.Elapsed().Seconds(), "tok/s")
				b.ReportMetric(float64(b.N*64)/cpu.Seconds(), "tok/cpu-s")
			})
			if sh != nil {
				sh.Close()
			}
		}
	}
}
