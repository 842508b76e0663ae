package testnet

// The chaos suite (issue 22): a running testnet under steady, bounded load
// while a seeded driver kills (-9), stops (SIGSTOP) and restarts random
// relays, parties, dealers and one authority, floods one authority with
// descriptors and opens slow connections on every port. Afterwards it
// checks that
//
//   - no completion that returned 200 was wrong (greedy, so it must equal
//     local generation);
//   - every error was a clean OpenAI error with the right status and code
//     (503 service_unavailable, 429 rate_limit_exceeded with Retry-After);
//   - service was full again within one consensus interval of the end of
//     the last fault (from some request started within it on, three right
//     completions in a row), and every relay listed Running again within
//     three intervals;
//   - every daemon's peak RSS stayed under a stated bound.
//
// Pipeline: plan (the seed fixes every fault: kind, target, start, length)
// → load + RSS sampler + fault driver run together → recovery watch →
// report. Faults of the kill/stop kind run one at a time, so a role with a
// spare is never left with none; the flood and the slow connections overlap
// them. The same seed on the same network shape replays the same faults.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/unfed/unfed/directory"
)

// ChaosOptions configure a chaos run. Zero values mean the defaults.
type ChaosOptions struct {
	// Seed fixes the fault plan; a failed run is replayed with its seed.
	Seed uint64
	// Duration is the fault phase (default 2 minutes).
	Duration time.Duration
	// FaultGap is the pause between two kill/stop faults (default 2 s).
	FaultGap time.Duration
	// Sessions is the number of concurrent load sessions (default 8).
	Sessions int
	// MaxTokens is the length of each greedy completion (default 8).
	MaxTokens int
	// Flood is how many fresh descriptors the flood sends (default 400).
	Flood int
	// SlowConns is how many slow connections are opened to each port
	// (default 8).
	SlowConns int
	// RSSLimitMiB bounds every daemon's peak RSS (default 512).
	RSSLimitMiB int64
	// Prompt is the load's prompt (default "Once upon a time").
	Prompt string
	// Log receives one line per fault and phase; nil discards.
	Log io.Writer
}

func (o *ChaosOptions) defaults() {
	if o.Duration <= 0 {
		o.Duration = 2 * time.Minute
	}
	if o.FaultGap <= 0 {
		o.FaultGap = 2 * time.Second
	}
	if o.Sessions <= 0 {
		o.Sessions = 8
	}
	if o.MaxTokens <= 0 {
		o.MaxTokens = 8
	}
	if o.Flood <= 0 {
		o.Flood = 400
	}
	if o.SlowConns <= 0 {
		o.SlowConns = 8
	}
	if o.RSSLimitMiB <= 0 {
		o.RSSLimitMiB = 512
	}
	if o.Prompt == "" {
		o.Prompt = "Once upon a time"
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
}

// Fault is one planned fault.
type Fault struct {
	At     time.Duration // from the start of the fault phase
	Kind   string        // kill, stop, flood, slow
	Target string        // node name (kill, stop), authority (flood), "*" (slow)
	For    time.Duration // how long before restart, SIGCONT or closing
}

func (f Fault) String() string {
	return fmt.Sprintf("+%s %s %s for %s", f.At.Truncate(time.Millisecond), f.Kind, f.Target, f.For.Truncate(time.Millisecond))
}

// ChaosReport is what a chaos run measured.
type ChaosReport struct {
	Seed     uint64
	Plan     []Fault
	Interval time.Duration
	// Requests counts completions by outcome: "200", "200-wrong", or
	// "STATUS code" for errors, "transport" when the API did not answer.
	Requests map[string]int
	// Violations lists every broken expectation, empty when the run passed.
	Violations []string
	// FullService is the time from the end of the last fault to the start
	// of the first of three right completions in a row started after it:
	// from then on requests succeed. ThreeDone is when the third ended.
	FullService, ThreeDone time.Duration
	// AllListed is the time from the end of the last fault until the
	// consensus lists every relay Running at its current address.
	AllListed time.Duration
	// PeakRSS is the highest peak RSS (VmHWM, KiB) seen per role.
	PeakRSS map[string]int64
	// Flood counts the flood's answers by HTTP status.
	Flood map[int]int
}

// Summary is the report in a few lines (for logs and docs/PERFORMANCE.md).
func (r *ChaosReport) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "chaos seed %d: %d faults, interval %s\n", r.Seed, len(r.Plan), r.Interval)
	keys := slices.Sorted(mapKeys(r.Requests))
	total := 0
	for _, k := range keys {
		total += r.Requests[k]
	}
	fmt.Fprintf(&b, "requests %d:", total)
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%d", k, r.Requests[k])
	}
	fmt.Fprintf(&b, "\nfull service %s after the last fault (three right completions done at %s); every relay Running again after %s\n",
		r.FullService.Round(100*time.Millisecond), r.ThreeDone.Round(100*time.Millisecond), r.AllListed.Round(100*time.Millisecond))
	fmt.Fprintf(&b, "peak RSS (MiB):")
	for _, role := range slices.Sorted(mapKeys(r.PeakRSS)) {
		fmt.Fprintf(&b, " %s=%.0f", role, float64(r.PeakRSS[role])/1024)
	}
	fmt.Fprintf(&b, "\nflood answers: %v\n", r.Flood)
	for _, v := range r.Violations {
		fmt.Fprintf(&b, "VIOLATION: %s\n", v)
	}
	return b.String()
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// PlanChaos returns the fault plan for a network and seed: kill/stop faults
// one after another over relays and the last authority, a flood of the
// first authority a third of the way in and slow connections on every port
// halfway. It depends only on its arguments.
func PlanChaos(n *Network, o ChaosOptions) []Fault {
	o.defaults()
	rng := rand.New(rand.NewPCG(o.Seed, 0x756e666564))
	var targets []string
	var lastAuth string
	for _, node := range n.Nodes {
		switch {
		case node.Kind == "relay" && node.Role != "bridge":
			targets = append(targets, node.Name)
		case node.Kind == "dirauth":
			lastAuth = node.Name
		}
	}
	if lastAuth != "" {
		targets = append(targets, lastAuth)
	}
	var plan []Fault
	for at := o.FaultGap; at < o.Duration && len(targets) > 0; {
		f := Fault{At: at, Target: targets[rng.IntN(len(targets))], For: time.Duration(500+rng.IntN(2500)) * time.Millisecond}
		f.Kind = "kill"
		if rng.IntN(3) == 0 {
			f.Kind = "stop"
		}
		plan = append(plan, f)
		at += f.For + o.FaultGap + time.Duration(rng.IntN(1000))*time.Millisecond
	}
	// One authority among the faults at least: the middle one, if the
	// draw left it out.
	if lastAuth != "" && len(plan) > 0 && !slices.ContainsFunc(plan, func(f Fault) bool { return f.Target == lastAuth }) {
		plan[len(plan)/2].Target = lastAuth
	}
	if first := firstAuthority(n); first != "" {
		plan = append(plan, Fault{At: o.Duration / 3, Kind: "flood", Target: first})
	}
	plan = append(plan, Fault{At: o.Duration / 2, Kind: "slow", Target: "*", For: 10 * time.Second})
	sort.SliceStable(plan, func(i, j int) bool { return plan[i].At < plan[j].At })
	return plan
}

func firstAuthority(n *Network) string {
	for _, node := range n.Nodes {
		if node.Kind == "dirauth" {
			return node.Name
		}
	}
	return ""
}

// Chaos runs the suite on a started network with a client.
func Chaos(ctx context.Context, n *Network, o ChaosOptions) (*ChaosReport, error) {
	o.defaults()
	api, _, err := n.ClientAddrs()
	if err != nil {
		return nil, err
	}
	modelID, err := FirstModel(ctx, api)
	if err != nil {
		return nil, err
	}
	want, err := LocalGreedy(ctx, n.Spec.BinDir, n.Spec.Model, o.Prompt, o.MaxTokens)
	if err != nil {
		return nil, err
	}
	rep := &ChaosReport{Seed: o.Seed, Plan: PlanChaos(n, o), Interval: n.Spec.Interval,
		Requests: map[string]int{}, PeakRSS: map[string]int64{}, Flood: map[int]int{}}
	fmt.Fprintf(o.Log, "chaos: seed %d, %d faults over %s, %d sessions\n", o.Seed, len(rep.Plan), o.Duration, o.Sessions)

	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	rss := &rssSampler{n: n, peak: map[string]int64{}}
	var bg sync.WaitGroup
	bg.Go(func() { rss.run(runCtx) })
	ld := &load{api: api, model: modelID, prompt: o.Prompt, maxTokens: o.MaxTokens, want: want}
	for range o.Sessions {
		bg.Go(func() { ld.session(runCtx) })
	}

	start := time.Now()
	lastEnd, err := drive(ctx, n, rep, o, start)
	if err != nil {
		stopRun()
		bg.Wait()
		return rep, err
	}

	// Recovery: service, then the consensus.
	iv := n.Spec.Interval
	rctx, rcancel := context.WithTimeout(ctx, 6*iv+30*time.Second)
	defer rcancel()
	if from, done, ok := ld.fullServiceAfter(rctx, lastEnd, 3); ok {
		rep.FullService, rep.ThreeDone = from.Sub(lastEnd), done.Sub(lastEnd)
	} else {
		rep.FullService, rep.ThreeDone = -1, -1
	}
	if err := waitAllListed(rctx, n); err == nil {
		rep.AllListed = time.Since(lastEnd)
	} else {
		rep.AllListed = -1
		rep.Violations = append(rep.Violations, fmt.Sprintf("not every relay listed Running again: %v", err))
	}
	stopRun()
	bg.Wait()

	ld.mu.Lock()
	maps := ld.outcomes
	ld.mu.Unlock()
	for k, v := range maps {
		rep.Requests[k] = v
	}
	rep.Violations = append(rep.Violations, ld.violations...)
	switch {
	case rep.FullService < 0:
		rep.Violations = append(rep.Violations, "service did not come back (no three right completions in a row) after the last fault")
	case rep.FullService > iv:
		rep.Violations = append(rep.Violations, fmt.Sprintf("full service came back %s after the last fault, more than one interval (%s)", rep.FullService, iv))
	}
	if rep.AllListed > 3*iv {
		rep.Violations = append(rep.Violations, fmt.Sprintf("every relay Running again only %s after the last fault (bound: three intervals, %s)", rep.AllListed, 3*iv))
	}
	rss.mu.Lock()
	for name, kib := range rss.peak {
		role := n.node(name).Role
		rep.PeakRSS[role] = max(rep.PeakRSS[role], kib)
		if kib > o.RSSLimitMiB<<10 {
			rep.Violations = append(rep.Violations, fmt.Sprintf("%s peak RSS %d MiB, bound %d MiB", name, kib>>10, o.RSSLimitMiB))
		}
	}
	rss.mu.Unlock()
	if rep.Requests["200"] == 0 {
		rep.Violations = append(rep.Violations, "no completion succeeded during the run")
	}
	fmt.Fprint(o.Log, rep.Summary())
	return rep, nil
}

// drive applies the plan and returns when the last fault ended.
func drive(ctx context.Context, n *Network, rep *ChaosReport, o ChaosOptions, start time.Time) (time.Time, error) {
	var last time.Time
	var mu sync.Mutex
	var wg sync.WaitGroup
	var errs []error
	note := func(t time.Time) {
		mu.Lock()
		defer mu.Unlock()
		if t.After(last) {
			last = t
		}
	}
	for _, f := range rep.Plan {
		if !waitCtx(ctx, time.Until(start.Add(f.At))) {
			return last, ctx.Err()
		}
		fmt.Fprintf(o.Log, "chaos: %s\n", f)
		switch f.Kind {
		case "flood":
			wg.Go(func() {
				counts := floodAuthority(ctx, n.node(f.Target), o.Flood)
				mu.Lock()
				for k, v := range counts {
					rep.Flood[k] += v
				}
				mu.Unlock()
				note(time.Now())
			})
		case "slow":
			wg.Go(func() {
				holdSlowConns(ctx, n, o.SlowConns, f.For)
				note(time.Now())
			})
		case "kill", "stop":
			// One at a time: this fault ends before the next begins.
			if err := applyFault(ctx, n, f); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			note(time.Now())
		}
	}
	wg.Wait()
	return last, errors.Join(errs...)
}

// applyFault kills or stops f.Target for f.For, then restarts or
// continues it.
func applyFault(ctx context.Context, n *Network, f Fault) error {
	node := n.node(f.Target)
	n.mu.Lock()
	p := node.Proc
	n.mu.Unlock()
	if p == nil || p.Exited() {
		return nil // down already (it failed to restart): nothing to fault
	}
	switch f.Kind {
	case "kill":
		if err := n.Kill(f.Target); err != nil {
			return err
		}
		waitCtx(ctx, f.For)
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := n.Restart(rctx, f.Target); err != nil {
			return fmt.Errorf("chaos: restarting %s: %w", f.Target, err)
		}
	case "stop":
		if err := syscall.Kill(p.Pid(), syscall.SIGSTOP); err != nil {
			return fmt.Errorf("chaos: SIGSTOP %s: %w", f.Target, err)
		}
		waitCtx(context.Background(), f.For) // always continue it
		if err := syscall.Kill(p.Pid(), syscall.SIGCONT); err != nil {
			return fmt.Errorf("chaos: SIGCONT %s: %w", f.Target, err)
		}
	}
	return nil
}

// LocalGreedy runs `unfed generate` from binDir: the text a greedy
// completion of prompt must have.
func LocalGreedy(ctx context.Context, binDir, modelPath, prompt string, maxTokens int) (string, error) {
	out, err := exec.CommandContext(ctx, filepath.Join(binDir, "unfed"), "generate", "--model", modelPath, "--prompt", prompt,
		"--max-tokens", strconv.Itoa(maxTokens), "--temperature", "0").Output()
	if err != nil {
		return "", fmt.Errorf("testnet: unfed generate: %w", err)
	}
	return strings.TrimSuffix(string(out), "\n"), nil
}

// load is the steady load: sessions that each send one greedy completion
// after another and record every outcome.
type load struct {
	api, model, prompt, want string
	maxTokens                int

	mu         sync.Mutex
	outcomes   map[string]int
	violations []string
	done       []outcome // in completion order
}

type outcome struct {
	started, ended time.Time
	ok             bool
}

func (l *load) session(ctx context.Context) {
	for ctx.Err() == nil {
		start := time.Now()
		key, ok, bad := l.once(ctx)
		if ctx.Err() != nil && !ok {
			return // cut off by the end of the run: not an outcome
		}
		l.mu.Lock()
		if l.outcomes == nil {
			l.outcomes = map[string]int{}
		}
		l.outcomes[key]++
		if bad != "" && len(l.violations) < 20 {
			l.violations = append(l.violations, bad)
		}
		l.done = append(l.done, outcome{started: start, ended: time.Now(), ok: ok})
		l.mu.Unlock()
		if !ok {
			waitCtx(ctx, 200*time.Millisecond) // a failing client gets no hot loop
		}
	}
}

// once sends one completion and classifies the answer.
func (l *load) once(ctx context.Context) (key string, ok bool, violation string) {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	body, _ := json.Marshal(map[string]any{"model": l.model, "prompt": l.prompt, "max_tokens": l.maxTokens, "temperature": 0})
	req, _ := http.NewRequestWithContext(rctx, "POST", l.api+"/v1/completions", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return "canceled", false, ""
		}
		return "transport", false, fmt.Sprintf("the API did not answer: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode == 200 {
		var r struct {
			Choices []struct {
				Text string `json:"text"`
			} `json:"choices"`
		}
		if err := json.Unmarshal(b, &r); err != nil || len(r.Choices) != 1 {
			return "200-wrong", false, fmt.Sprintf("a 200 with a malformed body: %.200s", b)
		}
		if r.Choices[0].Text != l.want {
			return "200-wrong", false, fmt.Sprintf("a 200 with the wrong text %q, want %q", r.Choices[0].Text, l.want)
		}
		return "200", true, ""
	}
	var e struct {
		Error struct {
			Message string  `json:"message"`
			Type    string  `json:"type"`
			Code    *string `json:"code"`
		} `json:"error"`
	}
	code := "null"
	if json.Unmarshal(b, &e) == nil && e.Error.Code != nil {
		code = *e.Error.Code
	}
	key = fmt.Sprintf("%d %s", resp.StatusCode, code)
	if resp.Header.Get("Content-Type") != "application/json" || e.Error.Message == "" {
		return key, false, fmt.Sprintf("status %d is not an OpenAI error: %.200s", resp.StatusCode, b)
	}
	switch {
	case resp.StatusCode == 503 && e.Error.Type == "server_error" && code == "service_unavailable":
	case resp.StatusCode == 429 && e.Error.Type == "requests" && code == "rate_limit_exceeded":
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s < 1 {
			return key, false, fmt.Sprintf("429 without a Retry-After of whole seconds: %q", resp.Header.Get("Retry-After"))
		}
	default:
		return key, false, fmt.Sprintf("status %d type %s code %s is not what relay faults should give (503 service_unavailable or 429): %.200s",
			resp.StatusCode, e.Error.Type, code, e.Error.Message)
	}
	return key, false, ""
}

// fullServiceAfter waits for k right completions in a row, in completion
// order, among those started after t, and returns when the first of them
// started and when the k-th ended.
func (l *load) fullServiceAfter(ctx context.Context, t time.Time, k int) (from, done time.Time, ok bool) {
	for {
		l.mu.Lock()
		run := 0
		for _, o := range l.done {
			if !o.started.After(t) {
				continue
			}
			if !o.ok {
				run = 0
				continue
			}
			if run++; run == 1 || o.started.Before(from) {
				from = o.started
			}
			if run == k {
				l.mu.Unlock()
				return from, o.ended, true
			}
		}
		l.mu.Unlock()
		if !waitCtx(ctx, 100*time.Millisecond) {
			return time.Time{}, time.Time{}, false
		}
	}
}

// waitAllListed waits until the first authority's consensus lists every
// relay (bridges aside) Running at the address it listens on now.
func waitAllListed(ctx context.Context, n *Network) error {
	auth := n.node(firstAuthority(n))
	var missing []string
	for {
		missing = missing[:0]
		body, err := fetch(ctx, "http://"+auth.Listeners["dir"]+directory.PathConsensus)
		if err == nil {
			var c *directory.Consensus
			if u, perr := directory.ParseConsensus(body); perr == nil {
				c = u.Unchecked()
			}
			for _, node := range n.Nodes {
				if node.Kind != "relay" || node.Role == "bridge" {
					continue
				}
				if c == nil || !listedRunningAt(c, node) {
					missing = append(missing, node.Name)
				}
			}
			if c != nil && len(missing) == 0 {
				return nil
			}
		}
		if !waitCtx(ctx, 250*time.Millisecond) {
			return fmt.Errorf("still missing %v", missing)
		}
	}
}

func listedRunningAt(c *directory.Consensus, node *Node) bool {
	for _, r := range c.Relays {
		if r.Fingerprint.String() != node.Fingerprint || !r.HasFlag(directory.FlagRunning) {
			continue
		}
		for _, tr := range r.Transports {
			if tr.Addr == node.Listeners["or"] {
				return true
			}
		}
	}
	return false
}

func fetch(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return io.ReadAll(io.LimitReader(resp.Body, directory.MaxConsensusSize))
}

// rssSampler keeps every node's peak RSS (VmHWM of /proc/PID/status, KiB),
// across restarts.
type rssSampler struct {
	n    *Network
	mu   sync.Mutex
	peak map[string]int64
}

func (s *rssSampler) run(ctx context.Context) {
	for {
		s.sample()
		if !waitCtx(ctx, 500*time.Millisecond) {
			s.sample()
			return
		}
	}
}

func (s *rssSampler) sample() {
	for _, node := range s.n.Nodes {
		s.n.mu.Lock()
		p := node.Proc
		s.n.mu.Unlock()
		if p == nil || p.Exited() {
			continue
		}
		kib, err := peakRSS(p.Pid())
		if err != nil {
			continue
		}
		s.mu.Lock()
		s.peak[node.Name] = max(s.peak[node.Name], kib)
		s.mu.Unlock()
	}
}

// peakRSS reads VmHWM, the peak resident set, of a process in KiB.
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(v)
			if len(f) >= 1 {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, errors.New("testnet: no VmHWM")
}
