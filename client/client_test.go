package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unfed/unfed/compute/gguf"
	"github.com/unfed/unfed/compute/model"
	"github.com/unfed/unfed/compute/sample"
	"github.com/unfed/unfed/compute/tokenizer"
	"github.com/unfed/unfed/relay/daemon"
	"github.com/unfed/unfed/relay/hop"
)

const testPrompt = "Once upon a time"

// lines collects what a daemon announces.
type lines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lines) addr(kind string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ln := range strings.Split(l.buf.String(), "\n") {
		if v, ok := strings.CutPrefix(ln, "listening kind="+kind+" addr="); ok {
			return v
		}
	}
	return ""
}

// runningClient is a client.Run in this process.
type runningClient struct {
	api     string
	metrics string // the metrics listener, when configured
	stop    func()
}

// startClient runs a client on the shared network and waits until /healthz
// answers 200.
func startClient(t testing.TB, n *testNet, dataDir string, mod func(*Config)) *runningClient {
	t.Helper()
	cfg := DefaultConfig()
	cfg.DataDir = dataDir
	cfg.API.Listen = "127.0.0.1:0"
	cfg.SOCKS.Listen = ""
	cfg.Authorities = n.authorities
	cfg.Models = []ModelConfig{{Path: n.modelPath}}
	cfg.Circuit.StepTimeout = 60 * time.Second
	cfg.Circuit.BuildTimeout = 60 * time.Second
	if mod != nil {
		mod(&cfg)
	}
	out := &lines{}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, daemon.Env{Log: logger, Stdout: out, Stderr: io.Discard}) }()
	rc := &runningClient{}
	var once sync.Once
	rc.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("client.Run: %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Error("client.Run did not return after cancel")
			}
		})
	}
	t.Cleanup(rc.stop)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			t.Fatalf("client.Run returned early: %v", err)
		default:
		}
		if rc.api = out.addr("api"); rc.api != "" {
			resp, err := http.Get("http://" + rc.api + "/healthz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					rc.metrics = out.addr("metrics")
					return rc
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("client not healthy within 30 s")
	return nil
}

// complete posts a greedy /v1/completions and returns the text.
func (rc *runningClient) complete(t *testing.T, modelID string, maxTokens int) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"model": modelID, "prompt": testPrompt, "max_tokens": maxTokens, "temperature": 0})
	resp, err := http.Post("http://"+rc.api+"/v1/completions", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("completion: %d %s", resp.StatusCode, b)
	}
	var r struct {
		Choices []struct {
			Text string `json:"text"`
		} `json:"choices"`
		Usage struct {
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(b, &r); err != nil || len(r.Choices) != 1 {
		t.Fatalf("completion body %s: %v", b, err)
	}
	return r.Choices[0].Text
}

// stream posts a streaming greedy completion and calls each with every text
// piece as it arrives.
func (rc *runningClient) stream(t *testing.T, modelID string, maxTokens int, each func(i int, text string)) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"model": modelID, "prompt": testPrompt, "max_tokens": maxTokens, "temperature": 0, "stream": true})
	resp, err := http.Post("http://"+rc.api+"/v1/completions", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		t.Fatalf("stream: %d %s", resp.StatusCode, b)
	}
	var text strings.Builder
	sc := bufio.NewScanner(resp.Body)
	i, sawDone := 0, false
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if data == "[DONE]" {
			sawDone = true
			break
		}
		var ev struct {
			Choices []struct {
				Text string `json:"text"`
			} `json:"choices"`
			Error any `json:"error"`
		}
		if err := json.Unmarshal([]byte(data), &ev); err != nil || ev.Error != nil {
			t.Fatalf("stream event %s: %v", data, err)
		}
		for _, c := range ev.Choices {
			if c.Text != "" {
				text.WriteString(c.Text)
				if each != nil {
					each(i, c.Text)
				}
				i++
			}
		}
	}
	if !sawDone {
		t.Fatal("stream ended without [DONE]")
	}
	return text.String()
}

// localGreedy is what the unsplit engine generates for testPrompt.
func localGreedy(t *testing.T, path string, n int) string {
	t.Helper()
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.FromGGUF(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	sh, err := model.Load(path, model.ShardOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Close()
	ss, err := sh.NewSession(model.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	ids := tok.Encode(testPrompt, tok.AddBOS())
	lg, err := ss.ForwardTokens(ids, 0)
	if err != nil {
		t.Fatal(err)
	}
	pos := len(ids)
	dec := tok.NewStreamDecoder()
	var out strings.Builder
	for range n {
		next := sample.Argmax(lg)
		if tok.IsEOG(next) {
			break
		}
		out.WriteString(dec.Next(next))
		if lg, err = ss.ForwardTokens([]int{next}, pos); err != nil {
			t.Fatal(err)
		}
		pos++
	}
	out.WriteString(dec.Flush())
	return out.String()
}

func TestPlainGreedyMatchesLocal(t *testing.T) {
	n := sharedNet(t)
	const tokens = 24
	want := localGreedy(t, n.modelPath, tokens)
	rc := startClient(t, n, t.TempDir(), func(c *Config) { c.Circuit.Mode = string(ModeAnonymous) })
	if got := rc.complete(t, n.modelID, tokens); got != want {
		t.Fatalf("plain circuit generated %q\nlocal engine generated %q", got, want)
	}
	// Streaming yields the same text, piece by piece.
	pieces := 0
	if got := rc.stream(t, n.modelID, tokens, func(int, string) { pieces++ }); got != want {
		t.Fatalf("stream generated %q, want %q", got, want)
	}
	if pieces < 2 {
		t.Fatalf("stream came in %d pieces", pieces)
	}
}

// TestSetupPipelined: an anonymous circuit sends the prompt right behind
// the SETUPs (issue 16): the first hop receives the HIDDEN batch while the
// last hop has not yet handled its SETUP (held here until then, or 5 s),
// and the completion is still what the local engine generates.
func TestSetupPipelined(t *testing.T) {
	n := sharedNet(t)
	const tokens = 8
	want := localGreedy(t, n.modelPath, tokens)
	rc := startClient(t, n, t.TempDir(), func(c *Config) { c.Circuit.Mode = string(ModeAnonymous) })
	hidden := make(chan struct{})
	var once, held sync.Once
	var pipelined atomic.Bool
	n.mu.Lock()
	n.clientHook = func(relay string, o hop.Observation) {
		m, err := hop.Decode(o.Data)
		if err != nil {
			return
		}
		switch m.(type) {
		case *hop.Hidden:
			if relay == "s0" {
				once.Do(func() { close(hidden) })
			}
		case *hop.Setup:
			if relay == "s2" || relay == "s2b" {
				held.Do(func() {
					select {
					case <-hidden:
						pipelined.Store(true)
					case <-time.After(5 * time.Second):
					}
				})
			}
		}
	}
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		n.clientHook = nil
		n.mu.Unlock()
	}()
	got := rc.complete(t, n.modelID, tokens)
	if !pipelined.Load() {
		t.Fatal("the first hop got no HIDDEN before the last hop's SETUP was handled: the client waited for SETUP_OK")
	}
	if got != want {
		t.Fatalf("pipelined circuit generated %q, local %q", got, want)
	}
}

// TestConfidentialGreedyMatchesLocalInProcess is the in-process twin of
// testnet's TestConfidentialGreedyMatchesLocal (real relay processes): a
// confidential circuit of two stages generates what the local engine does.
func TestConfidentialGreedyMatchesLocalInProcess(t *testing.T) {
	n := sharedNet(t)
	const tokens = 10
	want := localGreedy(t, n.modelPath, tokens)
	rc := startClient(t, n, t.TempDir(), nil)
	if got := rc.complete(t, n.modelID, tokens); got != want {
		t.Fatalf("confidential circuit generated %q\nlocal engine generated %q", got, want)
	}
}

func TestModelsListsServable(t *testing.T) {
	n := sharedNet(t)
	rc := startClient(t, n, t.TempDir(), func(c *Config) { c.Circuit.Mode = string(ModeAnonymous) })
	resp, err := http.Get("http://" + rc.api + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	// The default mode (anonymous here) under the bare id, then each mode
	// the network offers a path for, sorted by id.
	var ids []string
	for _, d := range r.Data {
		ids = append(ids, d.ID)
	}
	if want := []string{n.modelID, n.modelID + ":anonymous", n.modelID + ":confidential"}; strings.Join(ids, " ") != strings.Join(want, " ") {
		t.Fatalf("models %v, want %v", ids, want)
	}
	// An unknown model is a 404.
	body, _ := json.Marshal(map[string]any{"model": "nope", "prompt": "x", "max_tokens": 1})
	resp2, err := http.Post("http://"+rc.api+"/v1/completions", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown model: status %d", resp2.StatusCode)
	}
}

func TestGuardStatePersists(t *testing.T) {
	n := sharedNet(t)
	dir := t.TempDir()
	plain := func(c *Config) { c.Circuit.Mode = string(ModeAnonymous) }
	rc := startClient(t, n, dir, plain)
	rc.complete(t, n.modelID, 2)
	rc.stop()
	first, err := os.ReadFile(filepath.Join(dir, guardFile))
	if err != nil {
		t.Fatal(err)
	}
	g, err := LoadGuards(dir, DefaultGuardConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := n.relays["guard"].store.Identity().Fingerprint().String()
	if s := g.Sampled(); len(s) != 1 || s[0] != want {
		t.Fatalf("sampled guards %v, want [%s]", s, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "cached-consensus")); err != nil {
		t.Fatalf("consensus not cached: %v", err)
	}
	rc = startClient(t, n, dir, plain)
	rc.complete(t, n.modelID, 2)
	rc.stop()
	second, err := os.ReadFile(filepath.Join(dir, guardFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, second) {
		t.Fatalf("guard state changed across a restart:\n%s\n%s", first, second)
	}
}

// TestFailoverMidGeneration stops the compute relay serving the last shard
// in the middle of a greedy completion; the client builds a circuit through
// the other one, replays the prompt and the tokens so far, and the output is
// what an uninterrupted run gives. It stops a relay: the tests after it
// need only one of s2 and s2b.
func TestFailoverMidGeneration(t *testing.T) {
	n := sharedNet(t)
	const tokens = 24
	want := localGreedy(t, n.modelPath, tokens)
	rc := startClient(t, n, t.TempDir(), func(c *Config) { c.Circuit.Mode = string(ModeAnonymous) })
	// The prompt is one edge message; die at the 8th: mid-generation.
	n.armKill(8)
	got := rc.stream(t, n.modelID, tokens, nil)
	counts, killed := n.edgeCounts()
	if killed == "" {
		t.Fatalf("no last-shard relay was stopped (edge messages %v)", counts)
	}
	other := "s2"
	if killed == "s2" {
		other = "s2b"
	}
	if counts[other] == 0 {
		t.Fatalf("%s was stopped but %s never took over (edge messages %v)", killed, other, counts)
	}
	if got != want {
		t.Fatalf("after stopping %s the client generated %q\nuninterrupted: %q", killed, got, want)
	}
	// The survivor keeps serving new requests.
	if got := rc.complete(t, n.modelID, tokens); got != want {
		t.Fatalf("after failover: %q, want %q", got, want)
	}
}

// TestCancelFreesSessions: a caller that goes away mid-stream cancels the
// generation; the client destroys the circuit and every relay frees its
// session.
func TestCancelFreesSessions(t *testing.T) {
	n := sharedNet(t)
	rc := startClient(t, n, t.TempDir(), func(c *Config) { c.Circuit.Mode = string(ModeAnonymous) })
	body, _ := json.Marshal(map[string]any{"model": n.modelID, "prompt": testPrompt, "max_tokens": 100, "temperature": 0, "stream": true})
	// The last shard stalls on its 3rd message (the 2nd generated token).
	held, release := n.armHold(3)
	defer release()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+rc.api+"/v1/completions", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	// Read the first event, then hang up.
	br := bufio.NewReader(resp.Body)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	select {
	case <-held:
	case <-time.After(20 * time.Second):
		t.Fatal("the generation never reached the last shard's 3rd message")
	}
	busy := 0
	for _, r := range n.relays {
		if r.svc != nil {
			busy += r.svc.Sessions()
		}
	}
	if busy < 3 {
		t.Fatalf("%d relay sessions open mid-generation, want 3", busy)
	}
	cancel()
	resp.Body.Close()
	release()
	deadline := time.Now().Add(20 * time.Second)
	for {
		busy := 0
		for _, r := range n.relays {
			if r.svc != nil {
				busy += r.svc.Sessions()
			}
		}
		if busy == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d relay sessions still open 20 s after the caller left", busy)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
