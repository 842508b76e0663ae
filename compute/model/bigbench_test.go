package model

// Benchmarks on synthetic models of real shapes (generated in a temporary
// directory by the benchmark itself) and the resident-memory probe.
//
//	go test -run XXX -bench 'Synth' -benchtime 1x ./compute/model/
//
// The probe re-executes the test binary with UNFED_RSS_PROBE set, so that
// the measured process holds nothing but one loaded shard and its session.

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/unfed/unfed/compute/modeltest"
	"github.com/unfed/unfed/compute/synth"
	"github.com/unfed/unfed/compute/tensor"
)

const rssProbeEnv = "UNFED_RSS_PROBE"

// runRSSProbe is called by TestMain when rssProbeEnv is set: it loads
// "path first last", runs 8 positions and prints "rss-kib N hwm-kib N".
func runRSSProbe(spec string) int {
	f := strings.Fields(spec)
	if len(f) != 3 {
		fmt.Fprintln(os.Stderr, "bad probe spec")
		return 2
	}
	first, _ := strconv.Atoi(f[1])
	last, _ := strconv.Atoi(f[2])
	sh, err := Load(f[0], ShardOptions{First: first, Last: last, Threads: 2})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ss, _ := sh.NewSession(SessionOptions{})
	for p := 0; p < 8; p++ {
		if sh.IsFirst() {
			_, err = ss.ForwardTokens([]int{p + 1}, p)
		} else {
			x := make([]float32, sh.Config().Dim)
			for i := range x {
				x[i] = float32(i%7) * 0.1
			}
			_, err = ss.ForwardActivations(x, 1, p)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	rss, hwm := procStatus("VmRSS:"), procStatus("VmHWM:")
	fmt.Printf("rss-kib %d hwm-kib %d\n", rss, hwm)
	return 0
}

func procStatus(key string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), key) {
			v, _ := strconv.ParseInt(strings.Fields(sc.Text())[1], 10, 64)
			return v
		}
	}
	return -1
}

// probeRSS returns the resident set (KiB) of a fresh process holding shard
// [first, last) of path after 8 positions.
func probeRSS(b *testing.B, path string, first, last int) int64 {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d %d", rssProbeEnv, path, first, last))
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("rss probe: %v", err)
	}
	var rss, hwm int64
	if _, err := fmt.Sscanf(string(out), "rss-kib %d hwm-kib %d", &rss, &hwm); err != nil {
		b.Fatalf("rss probe output %q", out)
	}
	return rss
}

// measureBandwidth returns the sequential read bandwidth in bytes/s that
// the engine's own kernels reach: one F32 matrix-vector product over a
// 512 MiB matrix (the vector stays in L1), best of three, the better of one
// and two threads.
func measureBandwidth() float64 {
	const cols = 4096
	w := make([]float32, 128<<20)
	for i := range w {
		w[i] = float32(i & 7)
	}
	m, _ := tensor.NewMatF32(len(w)/cols, cols, w)
	x := make([]float32, cols)
	out := make([]float32, m.Rows)
	best := 0.0
	for _, th := range []int{1, 2} {
		for r := 0; r < 3; r++ {
			t := time.Now()
			_ = tensor.MatMul(out, m, x, 1, th)
			if bw := float64(len(w)*4) / time.Since(t).Seconds(); bw > best {
				best = bw
			}
		}
	}
	return best
}

// bytesPerToken counts the weight bytes one decode step reads.
func (s *Shard) bytesPerToken() int64 {
	var n int64
	for _, w := range s.layers {
		for _, m := range []*tensor.Mat{w.wq, w.wk, w.wv, w.wo, w.gate, w.up, w.down} {
			n += int64(len(m.Bytes()))
		}
	}
	if s.output != nil {
		n += int64(len(s.output.Bytes()))
	}
	return n
}

// BenchmarkSynthDecode measures decode speed against the memory-bandwidth
// bound. The bandwidth of this shared machine drifts by a third within an
// hour, so it is measured right before and right after each decode run and
// the larger figure is the bound's denominator (the conservative choice).
func BenchmarkSynthDecode(b *testing.B) {
	for _, c := range []struct {
		shape string
		dt    tensor.DType
	}{{"llama-110m", tensor.F32}, {"qwen2.5-0.5b", tensor.Q8_0}} {
		b.Run(c.shape+"-"+c.dt.String(), func(b *testing.B) {
			dir := b.TempDir()
			path := filepath.Join(dir, "m.gguf")
			t0 := time.Now()
			if err := synth.WriteFile(path, synth.Options{Shape: synth.Shapes[c.shape], DType: c.dt, Seed: 1}); err != nil {
				b.Fatal(err)
			}
			st, _ := os.Stat(path)
			b.Logf("generated %s (%d MB) in %v", c.shape, st.Size()>>20, time.Since(t0).Round(time.Millisecond))
			for _, th := range []int{1, 2} {
				b.Run(fmt.Sprintf("threads%d", th), func(b *testing.B) {
					sh, err := Load(path, ShardOptions{Threads: th})
					if err != nil {
						b.Fatal(err)
					}
					defer sh.Close()
					ss, _ := sh.NewSession(SessionOptions{})
					defer ss.Close()
					if _, err := ss.ForwardTokens([]int{1, 2, 3, 4, 5, 6, 7, 8}, 0); err != nil {
						b.Fatal(err)
					}
					const steps = 16
					bwBefore := measureBandwidth()
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						ss.Truncate(8)
						for p := 8; p < 8+steps; p++ {
							if _, err := ss.ForwardTokens([]int{p}, p); err != nil {
								b.Fatal(err)
							}
						}
					}
					tps := float64(b.N*steps) / b.Elapsed().Seconds()
					b.StopTimer()
					bw := max(bwBefore, measureBandwidth())
					bpt := float64(sh.bytesPerToken())
					bound := bw / bpt
					b.ReportMetric(tps, "tok/s")
					b.ReportMetric(bpt/1e6, "MB/tok")
					b.ReportMetric(bound, "bound-tok/s")
					b.ReportMetric(bw/1e9, "GB/s")
					b.ReportMetric(100*tps/bound, "%bound")
				})
			}
			rss := probeRSS(b, path, 0, 0)
			b.Logf("whole model: rss %.1f MiB", float64(rss)/1024)
			b.ReportMetric(float64(rss)/1024, "rss-MiB")
			if c.shape == "qwen2.5-0.5b" {
				cfg, _ := ReadConfig(path)
				for i, r := range SplitLayers(cfg.NLayers, 4) {
					kib := probeRSS(b, path, r.First, r.Last)
					b.Logf("4-way shard %d layers [%d,%d): rss %.1f MiB", i, r.First, r.Last, float64(kib)/1024)
					b.ReportMetric(float64(kib)/1024, fmt.Sprintf("shard%d-rss-MiB", i))
				}
			}
		})
	}
}

// BenchmarkDecodeAfterIdle measures what an overlay relay sees: the first
// half of qwen2.5-0.5B Q8_0 (12 layers, as the first of two shards) decoding
// one token at a time, back to back, and with 20 ms between tokens spent
// asleep or spinning on one core — a relay of a pipeline waits while the
// other shards and the client work. Only the forward passes are timed.
func BenchmarkDecodeAfterIdle(b *testing.B) {
	path := filepath.Join(b.TempDir(), "m.gguf")
	if err := synth.WriteFile(path, synth.Options{Shape: synth.Shapes["qwen2.5-0.5b"], DType: tensor.Q8_0, Seed: 1}); err != nil {
		b.Fatal(err)
	}
	cfg, err := ReadConfig(path)
	if err != nil {
		b.Fatal(err)
	}
	sh, err := Load(path, ShardOptions{First: 0, Last: cfg.NLayers / 2})
	if err != nil {
		b.Fatal(err)
	}
	defer sh.Close()
	for _, c := range []struct {
		name string
		wait time.Duration
		spin bool
	}{{"back-to-back", 0, false}, {"sleep20ms", 20 * time.Millisecond, false}, {"spin20ms", 20 * time.Millisecond, true}} {
		b.Run(c.name, func(b *testing.B) {
			ss, err := sh.NewSession(SessionOptions{})
			if err != nil {
				b.Fatal(err)
			}
			defer ss.Close()
			const prompt, steps = 8, 16
			ids := []int{1, 2, 3, 4, 5, 6, 7, 8}
			if _, err := ss.ForwardTokens(ids, 0); err != nil {
				b.Fatal(err)
			}
			var busy time.Duration
			for i := 0; i < b.N; i++ {
				ss.Truncate(prompt)
				for p := prompt; p < prompt+steps; p++ {
					t := time.Now()
					if _, err := ss.ForwardTokens([]int{p}, p); err != nil {
						b.Fatal(err)
					}
					busy += time.Since(t)
					switch {
					case c.spin:
						for t := time.Now(); time.Since(t) < c.wait; {
						}
					case c.wait > 0:
						time.Sleep(c.wait)
					}
				}
			}
			b.ReportMetric(float64(busy.Microseconds())/float64(b.N*steps)/1000, "ms/token")
		})
	}
}

// BenchmarkBlock0 is the plaintext block 0 as a relay's engine runs it: a
// shard of layer 0 alone (token embedding, one transformer block), one token
// at the position BenchmarkStep in compute/mpc uses for the same shape, so
// the MPC stage can be compared with the engine and not only with the
// float64 reference (docs/perf/mpc.md).
//
//	go test ./compute/model -run '^$' -bench Block0 -benchtime 200x
func BenchmarkBlock0(b *testing.B) {
	dir := b.TempDir()
	for _, c := range []struct {
		name string
		dt   tensor.DType
		pos  int
	}{{"stories260K", 0, 31}, {"qwen2.5-0.5b", tensor.F32, 7}, {"qwen2.5-0.5b", tensor.Q8_0, 7}} {
		path := modeltest.Path(b, "stories260K.bin")
		name := c.name
		if c.name != "stories260K" {
			name += "-" + c.dt.String()
			path = filepath.Join(dir, name+".gguf")
			if err := synth.WriteFile(path, synth.Options{Shape: synth.Shapes[c.name], DType: c.dt, Seed: 1}); err != nil {
				b.Fatal(err)
			}
		}
		for _, th := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/threads%d", name, th), func(b *testing.B) {
				sh, err := Load(path, ShardOptions{First: 0, Last: 1, Threads: th})
				if err != nil {
					b.Fatal(err)
				}
				defer sh.Close()
				ss, err := sh.NewSession(SessionOptions{})
				if err != nil {
					b.Fatal(err)
				}
				defer ss.Close()
				ids := make([]int, c.pos)
				for i := range ids {
					ids[i] = 1 + i
				}
				if _, err := ss.ForwardTokens(ids, 0); err != nil {
					b.Fatal(err)
				}
				for b.Loop() {
					ss.Truncate(c.pos)
					if _, err := ss.ForwardTokens([]int{7}, c.pos); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "us/token")
			})
		}
	}
}
