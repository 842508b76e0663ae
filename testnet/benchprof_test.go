package testnet

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Profiling the compute relays and guards during a benchmark. With
// UNFED_BENCH_PROFILE=DIR every computing relay (shard, party, dealer) and
// every guard starts with debug.pprof_addr on 127.0.0.1:0, and
// profileCompute fetches, from each at once, a CPU profile, an execution
// trace and the allocations of UNFED_BENCH_PROFILE_SECONDS (default 5) into
// DIR/<node>.cpu.pprof, DIR/<node>.trace and DIR/<node>.allocs.pprof (Go
// publishes allocations at a collection: a run too short for one, with the
// daemons' GC slack, gives an empty allocation profile):
//
//	UNFED_BENCH_PROFILE=/tmp/prof go test ./testnet -run '^$' -bench 'TTFTvsLocal/words=100' -benchtime 40x
//	go tool pprof -top bin/unfed-relay /tmp/prof/s1-0.cpu.pprof; go tool trace /tmp/prof/s1-0.trace

// benchProfileDir is UNFED_BENCH_PROFILE.
func benchProfileDir() string { return os.Getenv("UNFED_BENCH_PROFILE") }

// enableComputePprof turns on the profiling listener of every compute relay
// of a generated network, when UNFED_BENCH_PROFILE is set, and gives them
// UNFED_BENCH_COMPUTE_ENV (space-separated NAME=VALUE, e.g.
// UNFED_COMPUTE_THREADS=1 or GODEBUG=...) for experiments.
func enableComputePprof(n *Network) {
	extra := strings.Fields(os.Getenv("UNFED_BENCH_COMPUTE_ENV"))
	for _, node := range n.Nodes {
		if !profiled(node) {
			continue
		}
		if node.Role != "guard" {
			node.Env = append(node.Env, extra...)
		}
		if benchProfileDir() != "" {
			node.Env = append(node.Env, "UNFED_DEBUG_PPROF_ADDR=127.0.0.1:0")
		}
	}
}

// profiled says whether a node is one the benchmark profiles: a relay
// that computes (anonymous shards, MPC parties and their dealers) or a
// guard (every prompt crosses one).
func profiled(node *Node) bool {
	return node.Role == "compute" || node.Role == "party" || node.Role == "dealer" || node.Role == "guard"
}

// hopCounters reads, per compute relay, its prefill passes' count and
// summed seconds (unfed_hop_compute_seconds), its process CPU seconds, its
// garbage collections, and its decode passes' count and summed seconds.
func hopCounters(b *testing.B, n *Network) map[string][6]float64 {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := map[string][6]float64{}
	for _, node := range n.Nodes {
		if node.Role != "compute" || node.Killed {
			continue
		}
		m, err := Metrics(ctx, node)
		if err != nil {
			b.Fatal(err)
		}
		out[node.Name] = [6]float64{sumPrefix(m, "unfed_hop_compute_seconds_count", `phase="prefill"`),
			sumPrefix(m, "unfed_hop_compute_seconds_sum", `phase="prefill"`), m["process_cpu_seconds_total"],
			m["go_gc_duration_seconds_count"],
			sumPrefix(m, "unfed_hop_compute_seconds_count", `phase="decode"`),
			sumPrefix(m, "unfed_hop_compute_seconds_sum", `phase="decode"`)}
	}
	return out
}

// procFaults reads the minor page faults (first touches of a page) and the
// user+system CPU ticks of 10 ms so far of every running guard, compute
// relay and client of n, by node name (/proc/PID/stat fields 10, 14, 15).
// On the development VM a first touch costs 12-18 µs: per request they are
// a fixed cost of every hop.
func procFaults(n *Network) map[string][2]float64 {
	out := map[string][2]float64{}
	for _, node := range n.Nodes {
		if node.Proc == nil || node.Killed || (node.Role != "guard" && node.Role != "compute" && node.Role != "client") {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", node.Proc.Pid()))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		// Fields after the command name: state is field 3, minflt 10.
		if f := strings.Fields(s[i+1:]); len(f) > 12 {
			flt, _ := strconv.ParseFloat(f[7], 64)
			u, _ := strconv.ParseFloat(f[11], 64)
			st, _ := strconv.ParseFloat(f[12], 64)
			out[node.Name] = [2]float64{flt, u + st}
		}
	}
	return out
}

// reportFaults reports, per node of procFaults, its minor page faults per
// request between two readings (an idle node's show the background: timers,
// probes, the consensus), and the CPU per request of the guards and the
// client (reportHops gives the compute relays').
func reportFaults(b *testing.B, n *Network, before, after map[string][2]float64, requests int) {
	for name, a := range after {
		p := before[name]
		b.ReportMetric((a[0]-p[0])/float64(requests), "flt/req-"+name)
		if node := n.Node(name); node != nil && node.Role != "compute" {
			b.ReportMetric(10*(a[1]-p[1])/float64(requests), "ms-cpu-"+name)
		}
	}
}

// reportHops reports, per compute relay between two hopCounters, the mean
// time of its prefill passes, its CPU time and its collections per request.
func reportHops(b *testing.B, before, after map[string][6]float64, requests int) {
	for name, a := range after {
		p := before[name]
		if n := a[0] - p[0]; n > 0 {
			b.ReportMetric(1000*(a[1]-p[1])/n, "ms-pass-"+name)
		}
		b.ReportMetric(1000*(a[2]-p[2])/float64(requests), "ms-cpu-"+name)
		b.ReportMetric((a[3]-p[3])/float64(requests), "gc/req-"+name)
	}
}

// profileCompute starts the fetches and returns a function that waits for
// them; without UNFED_BENCH_PROFILE it does nothing.
func profileCompute(b *testing.B, n *Network) (wait func()) {
	dir := benchProfileDir()
	if dir == "" {
		return func() {}
	}
	secs := 5
	if s, err := strconv.Atoi(os.Getenv("UNFED_BENCH_PROFILE_SECONDS")); err == nil && s > 0 {
		secs = s
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, node := range n.Nodes {
		if !profiled(node) || node.Proc == nil {
			continue
		}
		addr := node.Proc.Listener("pprof")
		if addr == "" {
			b.Fatalf("compute relay %s has no pprof listener", node.Name)
		}
		for kind, file := range map[string]string{"profile": ".cpu.pprof", "trace": ".trace", "allocs": ".allocs.pprof"} {
			url := fmt.Sprintf("http://%s/debug/pprof/%s?seconds=%d", addr, kind, secs)
			out := filepath.Join(dir, node.Name+file)
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := fetchTo(url, out, time.Duration(secs+30)*time.Second); err != nil {
					b.Error(err)
				}
			}()
		}
	}
	// Both have started sampling once their requests are in.
	time.Sleep(200 * time.Millisecond)
	return wg.Wait
}

func fetchTo(url, path string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// decodePasses is the summed mean decode pass of the compute relays between
// two hopCounters: what one token's step computes on a circuit through
// each of them once.
func decodePasses(before, after map[string][6]float64) time.Duration {
	var sum float64
	for name, a := range after {
		p := before[name]
		if n := a[4] - p[4]; n > 0 {
			sum += (a[5] - p[5]) / n
		}
	}
	return time.Duration(sum * float64(time.Second))
}
