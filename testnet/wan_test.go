package testnet

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/unfed/unfed/compute/gguf"
	"github.com/unfed/unfed/compute/tokenizer"
)

// timedStream runs a streamed greedy completion and returns its text, the
// time to the response headers, and the arrival time of every text piece
// (from the request's start).
func timedStream(ctx context.Context, api, model, prompt string, maxTokens int) (string, time.Duration, []time.Duration, error) {
	body, _ := json.Marshal(map[string]any{"model": model, "prompt": prompt, "max_tokens": maxTokens, "temperature": 0, "stream": true})
	req, _ := http.NewRequestWithContext(ctx, "POST", api+"/v1/completions", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", 0, nil, err
	}
	defer resp.Body.Close()
	headers := time.Since(start)
	if resp.StatusCode != 200 {
		return "", headers, nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	var text strings.Builder
	var at []time.Duration
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if data == "[DONE]" {
			return text.String(), headers, at, nil
		}
		var ev struct {
			Choices []struct {
				Text string `json:"text"`
			} `json:"choices"`
			Error any `json:"error"`
		}
		if err := json.Unmarshal([]byte(data), &ev); err != nil || ev.Error != nil {
			return "", headers, nil, fmt.Errorf("event %s: %v", data, err)
		}
		for _, c := range ev.Choices {
			if c.Text != "" {
				text.WriteString(c.Text)
				at = append(at, time.Since(start))
			}
		}
	}
	return "", headers, nil, fmt.Errorf("stream ended without [DONE]: %v", sc.Err())
}

// TestLinkDelay: with 20 ms on every link each way, an anonymous circuit
// guard → s1 → s2 costs at least its summed round trips per token (3 links,
// 6 × 20 ms), so the delay is real, and the completion is what the local
// engine generates.
func TestLinkDelay(t *testing.T) {
	const delay = 20 * time.Millisecond
	n := startNetwork(t, Spec{Mode: "anonymous", Replicas: 1, Guards: 1, Link: LinkShape{Delay: delay}})
	api, _, _ := n.ClientAddrs()
	const tokens = 12
	want := localGreedy(t, n.Spec.Model, e2ePrompt, tokens)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	model, err := modelForMode(ctx, api, "anonymous")
	if err != nil {
		t.Fatal(err)
	}
	got, _, at, err := timedStream(ctx, api, model, e2ePrompt, tokens)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("completion over delayed links %q, local %q", got, want)
	}
	if len(at) < 4 {
		t.Fatalf("%d pieces", len(at))
	}
	perToken := (at[len(at)-1] - at[0]) / time.Duration(len(at)-1)
	rtt := 3 * 2 * delay
	t.Logf("per token %v over delayed links (summed RTT %v), first piece at %v", perToken, rtt, at[0])
	if perToken < rtt {
		t.Fatalf("per-token latency %v below the circuit's summed RTT %v: the links are not delayed", perToken, rtt)
	}
}

// TestBundleOnlyClient: a testnet whose client config names no model file
// fetches the model's bundle from a relay, verifies it against the
// consensus and answers completions, greedy, as `unfed generate` does.
func TestBundleOnlyClient(t *testing.T) {
	n := startNetworkPatched(t, Spec{Mode: "anonymous", Replicas: 1}, func(node *Node, cfg map[string]any) {
		if node.Kind == "client" {
			delete(cfg, "models")
		}
	})
	api, _, _ := n.ClientAddrs()
	want := localGreedy(t, n.Spec.Model, e2ePrompt, 24)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for _, mode := range []string{"anonymous", "confidential"} {
		model, err := modelForMode(ctx, api, mode)
		if err != nil {
			t.Fatal(err)
		}
		got, err := greedyCompletion(ctx, api, model, e2ePrompt, 24)
		if err != nil || got != want {
			t.Fatalf("%s circuit of a bundle-only client: %q, %v; local %q", mode, got, err, want)
		}
	}
	c := n.Node("client")
	ms, _ := filepath.Glob(filepath.Join(c.Dir, "data", "bundles", "*.bundle.gguf"))
	if len(ms) != 1 {
		t.Fatalf("bundle cache holds %v", ms)
	}
}

// TestLongPromptPrefill: a 1,000-token prompt crosses the anonymous circuit
// in one batch; the stream's headers come before the first token, and the
// greedy output equals local generation.
func TestLongPromptPrefill(t *testing.T) {
	n := startNetwork(t, Spec{Mode: "anonymous", Replicas: 1})
	api, _, _ := n.ClientAddrs()
	f, err := gguf.Open(n.Spec.Model)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.FromGGUF(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for len(tok.Encode(b.String(), true)) < 1000 {
		b.WriteString("Once upon a time, there was a little girl named Lily. She loved to play outside in the park. ")
	}
	prompt := b.String()
	const tokens = 16
	want := localGreedy(t, n.Spec.Model, prompt, tokens)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	model, err := modelForMode(ctx, api, "anonymous")
	if err != nil {
		t.Fatal(err)
	}
	// The prefill passes every compute hop ran (more than one position).
	passes := func() map[string]float64 {
		out := map[string]float64{}
		for _, node := range n.Nodes {
			if node.Role != "compute" {
				continue
			}
			m, err := Metrics(ctx, node)
			if err != nil {
				t.Fatal(err)
			}
			out[node.Name] = sumPrefix(m, "unfed_hop_compute_seconds_count", `phase="prefill"`)
		}
		return out
	}
	before := passes()
	got, headers, at, err := timedStream(ctx, api, model, prompt, tokens)
	if err != nil {
		t.Fatal(err)
	}
	if len(at) == 0 || headers > at[0] {
		t.Fatalf("headers at %v, first token at %v", headers, at)
	}
	t.Logf("%d-token prompt: headers %v, first token %v", len(tok.Encode(prompt, true)), headers, at[0])
	if got != want {
		t.Fatalf("long prompt through the circuit %q\nlocal %q", got, want)
	}
	// The prompt crossed every hop in four chunks (client/session.go,
	// prefillRows), each run as it arrived, so that the hops compute in a
	// pipeline; the completion above is still local generation's.
	for name, n0 := range before {
		if d := passes()[name] - n0; d != 4 {
			t.Errorf("%s ran the prompt in %v prefill passes, want 4 (one per chunk)", name, d)
		}
	}
}

// TestPromptOneCircuitRoundTrip counts the one-way link crossings between
// a ~128-token prompt leaving the client and its first token: with every
// link delayed 100 ms (far more than the prefill and every process's
// hand-offs), the first token of a request that takes the spare circuit
// comes after exactly 6 of them on a guard → s1 → s2 circuit, one circuit
// round trip (the SETUPs, COMMIT_ONs and the prompt leave together, spec
// 03 §7). An extra round trip on the critical path (waiting for the
// SETUP_OKs, a handshake per request, hop-by-hop store and wait) adds at
// least 2. The forwarders' record shows the prompt itself left in the
// request's first flight, before anything could come back.
func TestPromptOneCircuitRoundTrip(t *testing.T) {
	const delay = 100 * time.Millisecond
	n := startNetwork(t, Spec{Mode: "anonymous", Replicas: 1, Guards: 1, Interval: 8 * time.Second,
		Link: LinkShape{Delay: delay}, LinkRecord: true})
	api, _, _ := n.ClientAddrs()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	model, err := modelForMode(ctx, api, "anonymous")
	if err != nil {
		t.Fatal(err)
	}
	guard := ""
	for _, node := range n.Nodes {
		if node.Role == "guard" {
			guard = node.Name
		}
	}
	prompt := storyWords(100) // 128 tokens of stories260K
	const rows = 128 * 64 * 4 // the prompt's HIDDEN rows (stories260K: 64 wide, f32)
	best := -1
	// Spares built ahead of need: each request takes the spare, and the
	// next starts only once the client has built its replacement (a build
	// is six link round trips, longer on a loaded machine).
	ahead := func() float64 {
		m, err := Metrics(ctx, n.node("client"))
		if err != nil {
			t.Fatal(err)
		}
		return sumPrefix(m, "unfed_client_circuit_builds_total", `mode="anonymous"`, `when="ahead"`)
	}
	need := 1.0
	for i := 0; i < 3; i++ {
		deadline := time.Now().Add(time.Minute)
		for ahead() < need {
			if time.Now().After(deadline) {
				t.Fatalf("request %d: no spare circuit built within a minute (%v built ahead, want %v)", i, ahead(), need)
			}
			time.Sleep(50 * time.Millisecond)
		}
		need = ahead() + 1
		time.Sleep(100 * time.Millisecond) // the spare is counted just before it is stored
		start := time.Now()
		_, _, at, err := timedStream(ctx, api, model, prompt, 2)
		if err != nil {
			t.Fatal(err)
		}
		first := start.Add(at[0])
		// The request's bytes from client to guard: the first chunk
		// marks the prompt's departure; those read within one link delay
		// of it left before any answer could reach the client.
		var sent time.Time
		early := 0
		for _, c := range n.Links.Between(start, first) {
			if c.Relay != guard || !c.ToRelay {
				continue
			}
			if sent.IsZero() {
				sent = c.Read
			}
			if c.Read.Before(sent.Add(delay)) {
				early += c.Bytes
			}
		}
		if sent.IsZero() {
			t.Fatal("no bytes from the client to its guard were recorded")
		}
		crossings := int(first.Sub(sent) / delay)
		t.Logf("request %d: first token %v after the request, %v after the prompt left; %d link crossings; %d bytes in the first flight",
			i, at[0], first.Sub(sent), crossings, early)
		if early < rows {
			t.Fatalf("request %d: %d bytes left for the guard before an answer could come back, less than the prompt's %d: the client waited before sending it", i, early, rows)
		}
		if best < 0 || crossings < best {
			best = crossings
		}
	}
	if best != 6 {
		t.Fatalf("the first token came after %d one-way link crossings at best, want 6 (one round trip of a 3-link circuit)", best)
	}
}

// storyWords returns the first words of a story, repeated as needed.
func storyWords(words int) string {
	w := strings.Fields(strings.Repeat("Once upon a time there was a little girl named Lily. ", words/10+1))
	return strings.Join(w[:words], " ")
}
