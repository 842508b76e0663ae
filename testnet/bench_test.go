package testnet

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/unfed/unfed/compute/modeltest"
)

// firstWrite records when the first streamed text arrives, and the time
// between each later token's text and the one before.
type firstWrite struct {
	start, first, last time.Time
	// gaps are the times between successive tokens' text (after the
	// first): the per-token latency a reader of the stream sees, without
	// the stream's end.
	gaps []time.Duration
}

func (f *firstWrite) Write(p []byte) (int, error) {
	now := time.Now()
	if f.first.IsZero() {
		f.first = now
	} else if len(p) > 0 {
		f.gaps = append(f.gaps, now.Sub(f.last))
	}
	if len(p) > 0 {
		f.last = now
	}
	return len(p), nil
}

// BenchmarkOverlayGreedy measures, through a testnet of real processes, the
// time to first token and the per-token time of a streamed greedy completion
// of 32 tokens, in a confidential circuit (2 stages) and in an anonymous one
// (2 shards), for a 5-token prompt and a long one (UNFED_BENCH_LONG_PROMPT
// words of a story, default 100, about 128 tokens). The model is stories260K, or
// the file named by UNFED_BENCH_MODEL (for example a synthetic
// qwen2.5-0.5B from `unfed model synth`); UNFED_BENCH_LINK_DELAY delays
// every link (user-space forwarders, as `unfed testnet up --link-delay`);
// UNFED_BENCH_WARMUP runs that many completions first, unmeasured (the steady
// state of the processes' heaps). Compare with `unfed generate` on
// the same file (docs/PERFORMANCE.md). For the cost of verification
// (spec/11, docs/PERFORMANCE.md § Verification): UNFED_BENCH_NO_COMMIT=1
// turns the client's commitments off; UNFED_BENCH_VERIFY=N adds a verifier
// relay and sets the network's verify-fraction to N per mille, submits
// tickets at once, waits before the first completion until the verifier is
// listed and after the last until the verifier's CPU time stops growing
// (its checks done), and reports its CPU per token with the other roles'.
// UNFED_BENCH_GAPS=1 logs every completion's gaps between tokens (logGaps).
func BenchmarkOverlayGreedy(b *testing.B) {
	words, _ := strconv.Atoi(os.Getenv("UNFED_BENCH_LONG_PROMPT"))
	if words <= 0 {
		words = 100
	}
	long := strings.Repeat("Once upon a time there was a little girl named Lily. ", words/10+1)
	long = strings.Join(strings.Fields(long)[:words], " ")
	for _, mode := range []string{"confidential", "anonymous"} {
		b.Run(mode, func(b *testing.B) {
			n := startNetworkB(b, mode)
			api, _, _ := n.ClientAddrs()
			ctx := context.Background()
			// The model under this mode's name: the first model the client
			// lists may be another mode's.
			model, err := modelForMode(ctx, api, mode)
			if err != nil {
				b.Fatal(err)
			}
			i0 := 0 // sub-benchmark runs so far
			for _, p := range []struct{ name, text string }{{"short", e2ePrompt}, {"long", long}} {
				warmed := false
				b.Run(p.name, func(b *testing.B) {
					// UNFED_BENCH_TOKENS (default 32): fewer keep delayed
					// confidential runs, hundreds of link round trips per
					// token, within minutes.
					tokens, _ := strconv.Atoi(os.Getenv("UNFED_BENCH_TOKENS"))
					if tokens < 2 {
						tokens = 32
					}
					// UNFED_BENCH_WARMUP: completions run once, before
					// anything is measured, so that every process's heap
					// has grown to its collector's goal: on the development
					// VM a first touch of a page costs 14-18 us of CPU, and
					// a relay faults in ~140 MiB (the GC slack) once
					// (perf/confidential.md § New memory, not copies).
					if w, _ := strconv.Atoi(os.Getenv("UNFED_BENCH_WARMUP")); !warmed && w > 0 {
						for range w {
							if _, err := StreamCompletion(ctx, api, CompletionRequest{Model: model, Prompt: p.text, MaxTokens: tokens}, io.Discard); err != nil {
								b.Fatal(err)
							}
						}
						warmed = true
					}
					var ttft, total time.Duration
					roles := []string{"authority", "guard", "client", "compute", "party", "dealer", "verifier"}
					verifying := n.Spec.Verifiers > 0
					if verifying && i0 == 0 {
						ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
						waitVerifierListed(ctx, b, n)
						cancel()
					}
					i0++
					cpu0, sys0 := nodesCPU(n, "", false), nodesCPU(n, "", true)
					roleCPU := make([]time.Duration, len(roles))
					for i, r := range roles {
						roleCPU[i] = nodesCPU(n, r, false)
					}
					wait := profileCompute(b, n)
					defer wait()
					var holds, gaps []time.Duration
					var tail time.Duration
					for i := 0; i < b.N; i++ {
						fw := &firstWrite{start: time.Now()}
						if _, err := StreamCompletion(ctx, api, CompletionRequest{Model: model, Prompt: p.text, MaxTokens: tokens}, fw); err != nil {
							b.Fatal(err)
						}
						end := time.Now()
						gaps = append(gaps, fw.gaps...)
						if os.Getenv("UNFED_BENCH_GAPS") == "1" {
							logGaps(b, n, fw)
						}
						if !fw.last.IsZero() {
							tail += end.Sub(fw.last)
						}
						total += end.Sub(fw.start)
						ttft += fw.first.Sub(fw.start)
						if n.Links != nil {
							// How long the forwarders really held each
							// chunk while the tokens streamed: the nominal
							// delay plus their own lateness.
							for _, c := range n.Links.Between(fw.first, end) {
								if n.circuitRelay(c.Relay) {
									holds = append(holds, c.Wrote.Sub(c.Read))
								}
							}
						}
					}
					// Every process's CPU at the last completion's end; the
					// verifier's after its checks (below), so that the wait
					// adds no idle CPU of the others.
					cpu1, sys1 := nodesCPU(n, "", false), nodesCPU(n, "", true)
					roleCPU1 := make([]time.Duration, len(roles))
					for i, r := range roles {
						roleCPU1[i] = nodesCPU(n, r, false)
					}
					if verifying {
						// The verifier checks the tickets after the
						// completions: until its CPU time stops growing.
						v0 := nodesCPU(n, "verifier", false)
						for prev := time.Duration(-1); ; {
							v := nodesCPU(n, "verifier", false)
							if v == prev {
								break
							}
							prev = v
							time.Sleep(2 * time.Second)
						}
						late := nodesCPU(n, "verifier", false) - v0
						cpu1 += late
						roleCPU1[len(roles)-1] += late
					}
					if len(holds) > 0 {
						// The median chunk's hold, and the round trip of
						// the circuit (guard and each shard, both ways)
						// at that delay: what a token cannot beat.
						slices.Sort(holds)
						med := float64(holds[len(holds)/2].Microseconds()) / 1000
						b.ReportMetric(med, "ms-link-delay")
						b.ReportMetric(2*float64(n.shardCount()+1)*med, "ms-emulated-rtt")
					}
					b.ReportMetric(float64(ttft.Milliseconds())/float64(b.N), "ms-ttft")
					b.ReportMetric(float64((total-ttft).Microseconds())/float64(b.N*(tokens-1))/1000, "ms/token")
					if len(gaps) > 0 {
						// The median time between two tokens' text: the
						// same steps without the stream's end (after the
						// last token, until [DONE]) and robust to a stall.
						slices.Sort(gaps)
						b.ReportMetric(float64(gaps[len(gaps)/2].Microseconds())/1000, "ms/token-p50")
						b.ReportMetric(float64(gaps[len(gaps)*9/10].Microseconds())/1000, "ms/token-p90")
						b.ReportMetric(float64(tail.Microseconds())/1000/float64(b.N), "ms-stream-end")
					}
					// CPU time of every node process (client, guards,
					// relays, authorities) per generated token, prompt
					// included: against ms/token it says how much of a
					// token is compute on the two cores and how much is
					// waiting.
					b.ReportMetric(float64((cpu1-cpu0).Microseconds())/float64(b.N*tokens)/1000, "cpu-ms/token")
					b.ReportMetric(float64((sys1-sys0).Microseconds())/float64(b.N*tokens)/1000, "sys-ms/token")
					for i, r := range roles {
						if d := roleCPU1[i] - roleCPU[i]; d > 0 {
							b.ReportMetric(float64(d.Microseconds())/float64(b.N*tokens)/1000, "cpu-ms/token-"+r)
						}
					}
					if mode == "confidential" {
						// (a parent benchmark's metrics are not printed;
						// these average every step of the network so far)
						reportPartySteps(b, n)
					}
				})
			}
		})
	}
}

func startNetworkB(b *testing.B, mode string) *Network {
	b.Helper()
	dir, err := os.MkdirTemp("", "unfed-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	model := os.Getenv("UNFED_BENCH_MODEL")
	if model == "" {
		model = modeltest.Path(b, "stories260K.gguf")
	}
	shards, _ := strconv.Atoi(os.Getenv("UNFED_BENCH_SHARDS")) // 0: the default, 2
	// UNFED_BENCH_LINK_DELAY (a duration, e.g. 25ms) delays every link as
	// `unfed testnet up --link-delay` does.
	var link LinkShape
	if d := os.Getenv("UNFED_BENCH_LINK_DELAY"); d != "" {
		var err error
		if link.Delay, err = time.ParseDuration(d); err != nil {
			b.Fatalf("UNFED_BENCH_LINK_DELAY: %v", err)
		}
	}
	// Over delayed links the period is 30 s, not the testnet's 3 s. Each
	// period every authority probes every relay and measures it with
	// 512 KiB (spec/04 §6.3), which a deployed network does once an hour:
	// at 3 s, 17 MB cross the forwarders every period, and completions
	// still meet a gap of 100–140 ms now and then (UNFED_BENCH_GAPS shows
	// it; before sleepUntil stopped holding the harness's Ps, stalls of
	// 100–400 ms; docs/PERFORMANCE.md). Probes and measurements also cross
	// the delayed links, which a longer period leaves time for.
	interval := 3 * time.Second
	if link.Active() {
		interval = 30 * time.Second
	}
	// UNFED_BENCH_INTERVAL (a duration): another consensus period, e.g.
	// for a verifier's re-executions on a loaded machine.
	if d, err := time.ParseDuration(os.Getenv("UNFED_BENCH_INTERVAL")); err == nil && d > 0 {
		interval = d
	}
	spec := Spec{Dir: dir, BinDir: binDir, Model: model, Client: true, Mode: mode, Shards: shards, Stages: shards,
		Replicas: 1, Interval: interval, Link: link, LinkRecord: link.Active() && mode == "anonymous",
		NoCommitments: os.Getenv("UNFED_BENCH_NO_COMMIT") == "1"}
	if v, _ := strconv.Atoi(os.Getenv("UNFED_BENCH_VERIFY")); v > 0 {
		spec.Verifiers, spec.VerifyFraction, spec.TicketDelay = 1, int64(v), -1
	}
	n, err := Generate(spec)
	if err != nil {
		b.Fatal(err)
	}
	enableComputePprof(n)
	b.Cleanup(func() {
		if err := n.StopAll(15 * time.Second); err != nil {
			b.Error(err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := n.Start(ctx, false, io.Discard); err != nil {
		b.Fatal(err)
	}
	return n
}

// reportPartySteps reports the MPC parties' own timing of their steps
// (unfed_mpc_step_seconds and unfed_mpc_peer_wait_seconds, spec
// 09-relay-operation §9), averaged over every step of the run, prompt
// included: how much of a token the pair takes, and how much of that each
// party waits for the other.
func reportPartySteps(b *testing.B, n *Network) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	parties, err := partyMetrics(ctx, n)
	if err != nil {
		b.Fatal(err)
	}
	// Peak resident memory of the party processes (VmHWM).
	var peak float64
	for _, node := range n.Nodes {
		if node.Role != "party" || node.Proc == nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", node.Proc.Pid()))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
				kb, _ := strconv.ParseFloat(f[1], 64)
				peak = max(peak, kb/1024)
			}
		}
	}
	b.ReportMetric(peak, "party-peak-MiB")
	for name, m := range parties {
		steps := sumPrefix(m, "unfed_mpc_step_seconds_count")
		if steps == 0 {
			continue // a party no circuit used
		}
		b.ReportMetric(1000*sumPrefix(m, "unfed_mpc_step_seconds_sum")/steps, "ms-step-"+name)
		b.ReportMetric(1000*sumPrefix(m, "unfed_mpc_peer_wait_seconds_sum")/steps, "ms-wait-"+name)
	}
}

// logGaps logs a completion's time to first token and the gaps between
// its tokens (UNFED_BENCH_GAPS=1) and, over recorded links, for each gap
// above 90 ms, the chunks and bytes each link carried in it and the
// 100 ms before it, by relay, connection and direction: what else was
// crossing the links when the stream stalled.
func logGaps(b *testing.B, n *Network, fw *firstWrite) {
	var ms []string
	t := fw.first
	for _, g := range fw.gaps {
		ms = append(ms, fmt.Sprintf("%.1f", float64(g.Microseconds())/1000))
		t = t.Add(g)
		if n.Links == nil || g <= 90*time.Millisecond {
			continue
		}
		type sum struct{ chunks, bytes int }
		by := map[string]sum{}
		for _, c := range n.Links.Between(t.Add(-g-100*time.Millisecond), t) {
			k := fmt.Sprintf("%s/%d/to-relay=%v", c.Relay, c.Conn, c.ToRelay)
			v := by[k]
			v.chunks++
			v.bytes += c.Bytes
			by[k] = v
		}
		b.Logf("gap of %v ending %s: links (chunks, bytes) %v", g, t.Format("15:04:05.000"), by)
	}
	b.Logf("started %s, first token %.1f ms, gaps (ms) %s", fw.start.Format("15:04:05.000"),
		float64(fw.first.Sub(fw.start).Microseconds())/1000, strings.Join(ms, " "))
}

// nodesCPU returns the user and system CPU time the network's running node
// processes of role ("" for all) have used so far (/proc/PID/stat, in clock
// ticks of 10 ms); with sysOnly the system time alone (on these VMs mostly
// page faults: a page the process gave back costs tens of microseconds to
// touch again).
func nodesCPU(n *Network, role string, sysOnly bool) time.Duration {
	var ticks int64
	for _, node := range n.Nodes {
		if node.Proc == nil || node.Killed || (role != "" && node.Role != role) {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", node.Proc.Pid()))
		if err != nil {
			continue
		}
		// Fields after the command name in parentheses: state is field 3,
		// utime 14, stime 15.
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i >= 0 {
			if f := strings.Fields(s[i+1:]); len(f) > 12 {
				u, _ := strconv.ParseInt(f[11], 10, 64)
				st, _ := strconv.ParseInt(f[12], 10, 64)
				if sysOnly {
					u = 0
				}
				ticks += u + st
			}
		}
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}

// partyMetrics fetches the metrics of the MPC party relays, by node name.
func partyMetrics(ctx context.Context, n *Network) (map[string]map[string]float64, error) {
	out := map[string]map[string]float64{}
	for _, node := range n.Nodes {
		if node.Role != "party" || node.Killed {
			continue
		}
		m, err := Metrics(ctx, node)
		if err != nil {
			return nil, err
		}
		out[node.Name] = m
	}
	return out, nil
}

// BenchmarkTTFTvsLocal measures, in one interleaved run, the time to first
// token of a 128- and a 1,024-token prompt (about 100 and 800 words of a
// story) through an anonymous circuit of a testnet of real processes, and
// the prefill of the same prompts by local `unfed generate` (its prompt
// tokens over its reported prompt rate), each round one of each (issue 16;
// docs/PERFORMANCE.md). UNFED_BENCH_LINK_DELAY delays the links as in
// BenchmarkOverlayGreedy; then it also reports the delay the forwarders
// really gave each chunk (the nominal one plus their lateness on a loaded
// machine) and the circuit round trip that makes.
func BenchmarkTTFTvsLocal(b *testing.B) {
	n := startNetworkB(b, "anonymous")
	api, _, _ := n.ClientAddrs()
	ctx := context.Background()
	model, err := modelForMode(ctx, api, "anonymous")
	if err != nil {
		b.Fatal(err)
	}
	rate := regexp.MustCompile(`prompt: (\d+) tokens, ([0-9.]+) tok/s`)
	shards := n.shardCount()
	for _, words := range []int{100, 800} {
		prompt := storyWords(words)
		b.Run(fmt.Sprintf("words=%d", words), func(b *testing.B) {
			var overlay, local, linkDelay time.Duration
			var overlays, locals []time.Duration // per round, for the medians
			var steps []time.Duration            // per round, the second token's gap
			tokens, chunks := 0, 0
			wait := profileCompute(b, n)
			defer wait()
			hops := hopCounters(b, n)
			faults := procFaults(n)
			for i := 0; i < b.N; i++ {
				fw := &firstWrite{start: time.Now()}
				if _, err := StreamCompletion(ctx, api, CompletionRequest{Model: model, Prompt: prompt, MaxTokens: 2}, fw); err != nil {
					b.Fatal(err)
				}
				overlay += fw.first.Sub(fw.start)
				overlays = append(overlays, fw.first.Sub(fw.start))
				if len(fw.gaps) > 0 {
					steps = append(steps, fw.gaps[0])
				}
				if n.Links != nil {
					// What the forwarders in front of the circuit's
					// relays really held each chunk of the request: the
					// nominal delay plus their own lateness on this
					// machine.
					for _, c := range n.Links.Between(fw.start, fw.first) {
						if n.circuitRelay(c.Relay) {
							linkDelay += c.Wrote.Sub(c.Read)
							chunks++
						}
					}
				}
				out, err := exec.Command(filepath.Join(binDir, "unfed"), "generate", "--model", n.Spec.Model, "--prompt", prompt,
					"--max-tokens", "2", "--temperature", "0").CombinedOutput()
				m := rate.FindSubmatch(out)
				if err != nil || m == nil {
					b.Fatalf("unfed generate: %v\n%s", err, out)
				}
				tokens, _ = strconv.Atoi(string(m[1]))
				tps, _ := strconv.ParseFloat(string(m[2]), 64)
				local += time.Duration(float64(tokens) / tps * float64(time.Second))
				locals = append(locals, time.Duration(float64(tokens)/tps*float64(time.Second)))
			}
			reportFaults(b, n, faults, procFaults(n), b.N)
			hopsAfter := hopCounters(b, n)
			reportHops(b, hops, hopsAfter, b.N)
			if len(steps) > 0 {
				// The circuit's round trip as measured: the second
				// token's step (the first token crossing the circuit and
				// the second coming back) less the hops' decode passes.
				// It counts what the emulated round trip does not: every
				// relay's and the client's handling of a cell, and their
				// wake-ups.
				rtt := median(steps) - decodePasses(hops, hopsAfter)
				b.ReportMetric(float64(rtt.Microseconds())/1000, "ms-circuit-rtt")
			}
			b.ReportMetric(float64(tokens), "tokens")
			b.ReportMetric(float64(overlay.Microseconds())/1000/float64(b.N), "ms-ttft")
			b.ReportMetric(float64(local.Microseconds())/1000/float64(b.N), "ms-local-prefill")
			// The medians (the upper middle for an even count): on a
			// shared machine one round that waited for a core moves a
			// mean by milliseconds.
			b.ReportMetric(float64(median(overlays).Microseconds())/1000, "ms-ttft-p50")
			b.ReportMetric(float64(median(locals).Microseconds())/1000, "ms-local-p50")
			if chunks > 0 {
				// The circuit's round trip as the forwarders emulated it:
				// guard and every shard, each way, at the mean delay they
				// gave a chunk.
				perLink := float64(linkDelay.Microseconds()) / 1000 / float64(chunks)
				b.ReportMetric(perLink, "ms-link-delay")
				b.ReportMetric(2*float64(shards+1)*perLink, "ms-emulated-rtt")
			}
		})
	}
}

// shardCount is the number of shards an anonymous circuit of n crosses.
func (n *Network) shardCount() int {
	if n.Spec.Shards == 0 {
		return 2
	}
	return n.Spec.Shards
}

// circuitRelay reports whether the relay named may be on an anonymous
// circuit (a guard or a compute relay), so that its forwarder's chunks
// count toward the circuit's round trip.
func (n *Network) circuitRelay(name string) bool {
	for _, node := range n.Nodes {
		if node.Name == name {
			return node.Role == "guard" || node.Role == "compute"
		}
	}
	return false
}
