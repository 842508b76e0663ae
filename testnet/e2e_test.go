package testnet

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unfed/unfed/compute/modeltest"
)

// modelPath finds stories260K.gguf for end-to-end tests.
func modelPath(t *testing.T) string { return modeltest.Path(t, "stories260K.gguf") }

// startNetwork generates and starts a testnet of real processes, stopped
// (with a clean-exit check) when the test ends.
func startNetwork(t *testing.T, spec Spec) *Network {
	t.Helper()
	return startNetworkPatched(t, spec, nil)
}

func dumpLogs(t *testing.T, n *Network) {
	for _, node := range n.Nodes {
		b, _ := os.ReadFile(filepath.Join(node.Dir, "stderr.log"))
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) > 15 {
			lines = lines[len(lines)-15:]
		}
		t.Logf("--- %s stderr (tail):\n%s", node.Name, strings.Join(lines, "\n"))
	}
}

// localGreedy runs `unfed generate` on the same model.
func localGreedy(t *testing.T, model, prompt string, maxTokens int) string {
	t.Helper()
	out, err := exec.Command(filepath.Join(binDir, "unfed"), "generate", "--model", model, "--prompt", prompt,
		"--max-tokens", fmt.Sprint(maxTokens), "--temperature", "0").Output()
	if err != nil {
		t.Fatalf("unfed generate: %v", err)
	}
	return strings.TrimSuffix(string(out), "\n")
}

// complete sends a non-streamed greedy completion through the client API.
func complete(ctx context.Context, api, prompt string, maxTokens int) (string, error) {
	model, err := FirstModel(ctx, api)
	if err != nil {
		return "", err
	}
	return completeModel(ctx, api, model, prompt, maxTokens)
}

// completeModel is complete for a given model id (the audit's greedy
// completion).
func completeModel(ctx context.Context, api, model, prompt string, maxTokens int) (string, error) {
	return greedyCompletion(ctx, api, model, prompt, maxTokens)
}

const e2ePrompt = "Once upon a time"

func TestTestnetGreedyMatchesLocal(t *testing.T) {
	n := startNetwork(t, Spec{})
	api, _, _ := n.ClientAddrs()
	want := localGreedy(t, n.Spec.Model, e2ePrompt, 48)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var streamed bytes.Buffer
	got, err := StreamCompletion(ctx, api, CompletionRequest{Prompt: e2ePrompt, MaxTokens: 48}, &streamed)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("overlay greedy completion differs from local:\noverlay: %q\nlocal:   %q", got, want)
	}
	circs, err := ClientCircuits(ctx, n)
	if err != nil || len(circs) == 0 {
		t.Fatalf("client circuits: %v %v", circs, err)
	}
	if err := checkConfidential(circs[len(circs)-1], n.Spec.Layers); err != nil {
		t.Fatal(err)
	}
	// Every node's metrics, after real traffic, pass the name lint.
	for _, node := range n.Nodes {
		page, err := getBody(ctx, "http://"+node.Listeners["metrics"]+"/metrics")
		if err != nil {
			t.Fatal(err)
		}
		if err := lintMetricsText(page); err != nil {
			t.Errorf("%s: %v", node.Name, err)
		}
	}
}

// TestTestnetRelayLoss kills a guard and one MPC party of the last circuit
// between requests: the next requests choose other relays and still give
// the same text.
func TestTestnetRelayLoss(t *testing.T) {
	n := startNetwork(t, Spec{Parties: 3})
	api, _, _ := n.ClientAddrs()
	want := localGreedy(t, n.Spec.Model, e2ePrompt, 24)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if got, err := complete(ctx, api, e2ePrompt, 24); err != nil || got != want {
		t.Fatalf("before loss: %q, %v; want %q", got, err, want)
	}
	// Kill one replica of each shard's first relay and one guard, mid-run:
	// the next requests must fail over and still give the same text.
	circs, _ := ClientCircuits(ctx, n)
	last := circs[len(circs)-1]
	killed := map[string]bool{}
	for _, h := range last {
		for _, node := range n.Nodes {
			if node.Fingerprint == h.Fingerprint && (h.Role == "guard" || (h.Role == "party-A" && !killed["party"])) {
				if err := n.Kill(node.Name); err != nil {
					t.Fatal(err)
				}
				killed[strings.TrimSuffix(h.Role, "-A")] = true
			}
		}
	}
	if !killed["guard"] || !killed["party"] {
		t.Fatalf("did not find a guard and a party to kill in %v", last)
	}
	for i := 0; i < 3; i++ {
		if got, err := complete(ctx, api, e2ePrompt, 24); err != nil || got != want {
			t.Fatalf("after loss, request %d: %q, %v; want %q", i, got, err, want)
		}
	}
}

func TestTestnetAuthorityLoss(t *testing.T) {
	n := startNetwork(t, Spec{Interval: 2 * time.Second})
	api, _, _ := n.ClientAddrs()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := n.Kill("auth3"); err != nil {
		t.Fatal(err)
	}
	// Wait through several voting intervals: the two remaining authorities
	// must keep publishing fresh consensuses that the client accepts.
	auth1 := n.Node("auth1")
	var first string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		body, err := getBody(ctx, "http://"+auth1.Listeners["dir"]+"/unfed/dir/v1/consensus")
		if err == nil {
			va := validAfter(body)
			if first == "" {
				first = va
			} else if va != first && strings.Count(body, "\ndirectory-signature ed25519 ") == 2 {
				// A consensus voted after the loss, signed by the two
				// survivors (one voted before the kill may carry three).
				if _, err := complete(ctx, api, e2ePrompt, 8); err != nil {
					t.Fatalf("client after authority loss: %v", err)
				}
				return
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("no new 2-of-3 consensus within 30s after an authority died (first valid-after %q)", first)
}

func getBody(ctx context.Context, url string) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("status %d", resp.StatusCode)
	}
	return string(b), err
}

func validAfter(doc string) string {
	for _, line := range strings.Split(doc, "\n") {
		if strings.HasPrefix(line, "valid-after ") {
			return line
		}
	}
	return ""
}

// TestTestnetLoad runs concurrent sessions of several requests each and
// records latency percentiles (logged; docs/PERFORMANCE.md has the figures).
func TestTestnetLoad(t *testing.T) {
	const sessions, perSession, maxTokens = 20, 5, 4
	n := startNetwork(t, Spec{})
	api, _, _ := n.ClientAddrs()
	want := localGreedy(t, n.Spec.Model, e2ePrompt, maxTokens)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var mu sync.Mutex
	var lat []time.Duration
	var failures []string
	var wg sync.WaitGroup
	for s := 0; s < sessions; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < perSession; r++ {
				start := time.Now()
				got, err := complete(ctx, api, e2ePrompt, maxTokens)
				d := time.Since(start)
				mu.Lock()
				lat = append(lat, d)
				if err != nil || got != want {
					failures = append(failures, fmt.Sprintf("%q %v", got, err))
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d of %d requests failed, first: %s", len(failures), sessions*perSession, failures[0])
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	t.Logf("load: %d sessions x %d requests (%d tokens each): p50 %v p99 %v max %v",
		sessions, perSession, maxTokens, lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1])
}

// killOnFirstWrite kills a node the first time text is written to it.
type killOnFirstWrite struct {
	once sync.Once
	kill func()
	buf  bytes.Buffer
}

func (k *killOnFirstWrite) Write(p []byte) (int, error) {
	k.once.Do(k.kill)
	return k.buf.Write(p)
}

// TestConfidentialFailover kills (-9), while a streamed greedy completion
// is under way, one relay of the confidential circuit in use: in turn party
// B of the last stage, party A of the first stage, and the first stage's
// dealer, one request each. Every time the caller still receives the whole
// completion, identical to local generation: the client rebuilds the
// circuit without the dead relay and replays the prompt and the tokens so
// far.
func TestConfidentialFailover(t *testing.T) {
	n := startNetwork(t, Spec{Parties: 3, Dealers: 3})
	api, _, _ := n.ClientAddrs()
	want := localGreedy(t, n.Spec.Model, e2ePrompt, 48)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	pick := []func(hops []CircuitHop) CircuitHop{
		func(h []CircuitHop) CircuitHop { return h[len(h)-1] }, // B of the last stage
		func(h []CircuitHop) CircuitHop { return h[2] },        // A of the first stage
		func(h []CircuitHop) CircuitHop { return h[1] },        // the first dealer
	}
	for i, choose := range pick {
		before, _ := ClientCircuits(ctx, n)
		killed, role := "", ""
		w := &killOnFirstWrite{kill: func() {
			circs, err := ClientCircuits(ctx, n)
			if err != nil || len(circs) == 0 {
				t.Errorf("no circuit to attack: %v", err)
				return
			}
			h := choose(circs[len(circs)-1])
			role = h.Role
			for _, node := range n.Nodes {
				if node.Fingerprint == h.Fingerprint {
					killed = node.Name
					n.Kill(node.Name)
				}
			}
		}}
		got, err := StreamCompletion(ctx, api, CompletionRequest{Prompt: e2ePrompt, MaxTokens: 48}, w)
		if err != nil {
			t.Fatalf("request %d failed after killing %s (%s) mid-generation: %v", i, killed, role, err)
		}
		if killed == "" {
			t.Fatalf("request %d: no relay was killed", i)
		}
		if got != want {
			t.Fatalf("request %d: completion after killing %s (%s) differs:\ngot:  %q\nwant: %q", i, killed, role, got, want)
		}
		after, _ := ClientCircuits(ctx, n)
		if len(after) < len(before)+2 {
			t.Fatalf("request %d: the client built %d circuits; want a replacement after the failure", i, len(after)-len(before))
		}
		if err := checkConfidential(after[len(after)-1], n.Spec.Layers); err != nil {
			t.Fatal(err)
		}
		t.Logf("killed %s (%s) mid-generation; the client rebuilt its circuit and the completion matched", killed, role)
	}
}

// checkConfidential checks a circuit's layout (spec/10 §2): the guard, then
// per stage a dealer and parties A and B over the same layers, the stages
// tiling [0, layers).
func checkConfidential(hops []CircuitHop, layers int) error {
	if len(hops) < 4 || (len(hops)-1)%3 != 0 || hops[0].Role != "guard" {
		return fmt.Errorf("circuit %+v is not a confidential circuit", hops)
	}
	next := 0
	for i := 1; i < len(hops); i += 3 {
		d, a, b := hops[i], hops[i+1], hops[i+2]
		if d.Role != "dealer" || a.Role != "party-A" || b.Role != "party-B" || len(a.Layers) != 2 ||
			fmt.Sprint(d.Layers) != fmt.Sprint(a.Layers) || fmt.Sprint(a.Layers) != fmt.Sprint(b.Layers) || a.Layers[0] != next {
			return fmt.Errorf("circuit %+v: stage at hop %d is not dealer, party-A, party-B from layer %d", hops, i, next)
		}
		next = a.Layers[1]
	}
	if next != layers {
		return fmt.Errorf("circuit %+v: stages end at layer %d of %d", hops, next, layers)
	}
	return nil
}

// TestAnonymousGenerationMatchesLocal: an anonymous circuit guard → S1 →
// S2 over real relay processes serving two shards of stories260K generates
// greedily exactly what `unfed generate` produces locally.
func TestAnonymousGenerationMatchesLocal(t *testing.T) {
	n := startNetwork(t, Spec{Mode: "anonymous", Replicas: 1, Parties: 2})
	api, _, _ := n.ClientAddrs()
	want := localGreedy(t, n.Spec.Model, e2ePrompt, 48)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	got, err := complete(ctx, api, e2ePrompt, 48)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("circuit greedy completion differs from local:\ncircuit: %q\nlocal:   %q", got, want)
	}
	circs, _ := ClientCircuits(ctx, n)
	hops := circs[len(circs)-1]
	if len(hops) != 3 || hops[0].Role != "guard" || hops[1].Layers[0] != 0 || hops[2].Layers[1] != n.Spec.Layers {
		t.Fatalf("circuit %+v, want guard, S1 from layer 0, S2 to the last layer", hops)
	}
	// The compute relays timed their shard: one prefill and a decode pass
	// per later token, labelled with their layer range; the client counted
	// the request and its tokens.
	for _, h := range hops[1:] {
		for _, node := range n.Nodes {
			if node.Fingerprint != h.Fingerprint {
				continue
			}
			page, err := getBody(ctx, "http://"+node.Listeners["metrics"]+"/metrics")
			if err != nil {
				t.Fatal(err)
			}
			layers := fmt.Sprintf(`layers="%d-%d"`, h.Layers[0], h.Layers[1])
			if v := metricSum(page, "unfed_hop_compute_seconds_count", layers, `phase="prefill"`); v < 1 {
				t.Errorf("%s: %d prefill passes timed for %s:\n%s", node.Name, v, layers, page)
			}
			if v := metricSum(page, "unfed_hop_compute_seconds_count", layers, `phase="decode"`); v < 47 {
				t.Errorf("%s: %d decode passes timed for %s, want 47", node.Name, v, layers)
			}
		}
	}
	page, err := getBody(ctx, "http://"+n.Node("client").Listeners["metrics"]+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if v := metricSum(page, "unfed_client_generated_tokens_total", `mode="anonymous"`); v != 48 {
		t.Errorf("client counted %d generated tokens, want 48", v)
	}
}

// metricSum adds the values of the series of name whose labels contain
// every one of labels, from a /metrics page, truncated to an integer.
func metricSum(page, name string, labels ...string) int {
	sum := 0.0
	for _, ln := range strings.Split(page, "\n") {
		series, value, ok := strings.Cut(ln, " ")
		if !ok || !strings.HasPrefix(series, name+"{") {
			continue
		}
		match := true
		for _, l := range labels {
			match = match && strings.Contains(series, l)
		}
		if v, err := strconv.ParseFloat(value, 64); match && err == nil {
			sum += v
		}
	}
	return int(sum)
}

// TestBridgeObfs4 runs a client whose only first hop is an unlisted bridge,
// reached over in-process obfs4 by its bridge line: the bridge is not in the
// consensus, hands the client its signed descriptor in the link handshake,
// and the completion through it matches local generation.
func TestBridgeObfs4(t *testing.T) {
	n := startNetwork(t, Spec{Bridge: true})
	api, _, _ := n.ClientAddrs()
	want := localGreedy(t, n.Spec.Model, e2ePrompt, 16)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	got, err := complete(ctx, api, e2ePrompt, 16)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("completion through the bridge %q, want %q", got, want)
	}
	circs, _ := ClientCircuits(ctx, n)
	first := circs[len(circs)-1][0].Fingerprint
	if bridge := n.Node("bridge1"); first != bridge.Fingerprint {
		t.Fatalf("first hop %s, want the bridge %s", first, bridge.Fingerprint)
	}
	body, err := getBody(ctx, "http://"+n.Node("auth1").Listeners["dir"]+"/unfed/dir/v1/consensus")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(body, n.Node("bridge1").Fingerprint) {
		t.Fatal("the bridge is listed in the consensus")
	}
}

// TestBridgeManagedObfs4proxy is TestBridgeObfs4 with the client reaching
// the bridge through Debian's obfs4proxy run as a managed pluggable
// transport (Tor's PT 1.0), not the in-process obfs4.
func TestBridgeManagedObfs4proxy(t *testing.T) {
	pt, err := exec.LookPath("obfs4proxy")
	if err != nil {
		t.Fatalf("obfs4proxy is required (make deps installs it): %v", err)
	}
	n := startNetwork(t, Spec{Bridge: true, ManagedPT: pt})
	api, _, _ := n.ClientAddrs()
	want := localGreedy(t, n.Spec.Model, e2ePrompt, 8)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	got, err := complete(ctx, api, e2ePrompt, 8)
	if err != nil || got != want {
		t.Fatalf("completion through obfs4proxy and the bridge: %q, %v; want %q", got, err, want)
	}
	circs, _ := ClientCircuits(ctx, n)
	if first := circs[len(circs)-1][0].Fingerprint; first != n.Node("bridge1").Fingerprint {
		t.Fatalf("first hop %s is not the bridge", first)
	}
	// The link really went through the external binary: the client runs
	// obfs4proxy as its child.
	out, err := exec.Command("pgrep", "-P", fmt.Sprint(n.Node("client").Proc.Pid()), "-f", "obfs4proxy").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		t.Fatalf("the client has no obfs4proxy child process: %v %q", err, out)
	}
}

// TestConfidentialGreedyMatchesLocal: through real relay processes (guard,
// then a dealer and two parties for each of two stages), greedy generation
// on stories260K matches local `unfed generate` for 48 tokens, for the
// reference prompt and one more; every circuit is confidential, and a
// request may still ask for an anonymous circuit by the model name suffix.
func TestConfidentialGreedyMatchesLocal(t *testing.T) {
	n := startNetwork(t, Spec{Replicas: 1})
	api, _, _ := n.ClientAddrs()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, prompt := range []string{"The little dog", e2ePrompt} {
		want := localGreedy(t, n.Spec.Model, prompt, 48)
		got, err := complete(ctx, api, prompt, 48)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("%q: confidential circuit generated %q\nlocal engine generated %q", prompt, got, want)
		}
	}
	circs, err := ClientCircuits(ctx, n)
	if err != nil || len(circs) < 2 {
		t.Fatalf("client circuits: %v %v", circs, err)
	}
	for _, c := range circs {
		if err := checkConfidential(c, n.Spec.Layers); err != nil {
			t.Fatal(err)
		}
	}
	// Every party ran one step per position it was sent: the prompt and
	// the generated tokens but the last.
	parties, err := partyMetrics(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	var steps float64
	for _, m := range parties {
		steps += sumPrefix(m, "unfed_mpc_step_seconds_count")
	}
	if steps == 0 {
		t.Fatal("no party reported a step")
	}
	// The same client serves anonymous circuits on request.
	model, err := FirstModel(ctx, api)
	if err != nil {
		t.Fatal(err)
	}
	want := localGreedy(t, n.Spec.Model, e2ePrompt, 16)
	if got, err := completeModel(ctx, api, model+":anonymous", e2ePrompt, 16); err != nil || got != want {
		t.Fatalf("anonymous request: %q, %v; want %q", got, err, want)
	}
	circs, _ = ClientCircuits(ctx, n)
	last := circs[len(circs)-1]
	if len(last) != 3 || last[1].Role != "compute" {
		t.Fatalf("the anonymous request used %+v", last)
	}
}
