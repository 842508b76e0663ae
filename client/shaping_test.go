package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unfed/unfed/relay/cell"
	"github.com/unfed/unfed/relay/circuit"
	"github.com/unfed/unfed/relay/hop"
	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/relay/origin"
)

// guardTap records, per circuit id, the frames of a client's guard link as
// the guard sees them: direction and size, in order.
type guardTap struct {
	circuit.Link
	mu    *sync.Mutex
	views map[uint32][]string
	ended map[uint32]bool
}

func (g *guardTap) note(dir string, f []byte) {
	c, err := cell.Decode(f)
	if err != nil {
		return
	}
	g.mu.Lock()
	g.views[c.CircID] = append(g.views[c.CircID], fmt.Sprintf("%s%d", dir, len(f)))
	if c.Cmd == cell.CmdDestroy {
		g.ended[c.CircID] = true
	}
	g.mu.Unlock()
}

func (g *guardTap) WriteFrame(p []byte) error {
	g.note(">", p)
	return g.Link.WriteFrame(p)
}

func (g *guardTap) ReadFrame() ([]byte, error) {
	f, err := g.Link.ReadFrame()
	if err == nil {
		g.note("<", f)
	}
	return f, err
}

// guardViews runs two anonymous requests that differ in prompt length,
// completion length and sampling mode through a client with the given
// shaping, and returns the guard's view of the circuit of each.
func guardViews(t *testing.T, shape bool) (a, b []string) {
	n := sharedNet(t)
	var mu sync.Mutex
	views, ended := map[uint32][]string{}, map[uint32]bool{}
	testGuardLinkWrap = func(l circuit.Link) circuit.Link {
		return &guardTap{Link: l, mu: &mu, views: views, ended: ended}
	}
	defer func() { testGuardLinkWrap = nil }()
	rc := startClient(t, n, t.TempDir(), func(c *Config) {
		c.Circuit.Mode = string(ModeAnonymous)
		c.Circuit.Shape, c.Circuit.CoverTokens = shape, 8
	})
	used := func() []uint32 {
		mu.Lock()
		defer mu.Unlock()
		var ids []uint32
		for id, v := range views {
			if ended[id] && len(v) > 10 { // more than a circuit build
				ids = append(ids, id)
			}
		}
		return ids
	}
	request := func(body map[string]any) ([]string, int) {
		before := map[uint32]bool{}
		for _, id := range used() {
			before[id] = true
		}
		raw, _ := json.Marshal(body)
		resp, err := http.Post("http://"+rc.api+"/v1/completions", "application/json", bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		var out struct {
			Usage struct {
				PromptTokens int `json:"prompt_tokens"`
			} `json:"usage"`
		}
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || err != nil {
			t.Fatalf("completion: %s (%v)", resp.Status, err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			for _, id := range used() {
				if !before[id] {
					mu.Lock()
					defer mu.Unlock()
					return append([]string(nil), views[id]...), out.Usage.PromptTokens
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatal("the request's circuit never ended")
		return nil, 0
	}
	a, na := request(map[string]any{"model": n.modelID + ":anonymous", "prompt": "Once upon a time there was a little",
		"max_tokens": 3, "temperature": 0})
	b, nb := request(map[string]any{"model": n.modelID + ":anonymous", "prompt": "Once upon a time there was a little girl",
		"max_tokens": 6, "temperature": 0.9, "seed": 7})
	// The premise: different prompt lengths whose HIDDEN messages (one
	// embedded row per token) fall in one size bucket.
	hidden := func(rows int) int {
		dim := 64 // stories260K
		return origin.ShapedSize(len((&hop.Hidden{Activations: hop.Activations{N: rows, Dim: dim, Final: true, Data: make([]float32, rows*dim)}}).Append(nil)))
	}
	if na == nb || hidden(na) != hidden(nb) {
		t.Fatalf("test premise: prompts of %d and %d tokens, HIDDEN buckets %d and %d bytes: want different lengths in one bucket", na, nb, hidden(na), hidden(nb))
	}
	return a, b
}

// TestGuardViewShaped: with shaping and cover (spec/03-compute.md §8.1) the
// guard's view — every frame's size, in order, in each direction — of two
// requests with different prompt lengths (in one size bucket of their
// HIDDEN messages), completion lengths (3 and 6 steps, both under
// cover_tokens 8) and sampling modes (greedy, sampled) is identical: the
// policy's leakage is the prompt's size bucket, the number of steps rounded
// up to a multiple of cover_tokens, and timing. Timing includes how the two
// directions interleave (a flow-control SENDME goes up when enough cells
// came down, before or after the next answer's cells depending on the
// race), so each direction is compared on its own. The mutation (shaping
// off) shows the same two requests then look different.
func TestGuardViewShaped(t *testing.T) {
	a, b := guardViews(t, true)
	if fmt.Sprint(directions(a)) != fmt.Sprint(directions(b)) {
		t.Fatalf("shaped guard views differ:\n%v\n%v", a, b)
	}
	t.Logf("shaped view: %d frames", len(a))
	t.Run("mutation", func(t *testing.T) {
		a, b := guardViews(t, false)
		if fmt.Sprint(directions(a)) == fmt.Sprint(directions(b)) {
			t.Fatalf("unshaped guard views are identical: %v", a)
		}
	})
}

// directions splits a guard view into the frames toward the relay and
// those toward the client, each in order.
func directions(view []string) (up, down []string) {
	for _, f := range view {
		if strings.HasPrefix(f, ">") {
			up = append(up, f)
		} else {
			down = append(down, f)
		}
	}
	return up, down
}

// BenchmarkGuardShaping measures what the shaping policy costs: bytes on
// the guard link per generated token and wall time per request, for a
// greedy 16-token anonymous completion of stories260K with shaping off, on,
// and on with cover_tokens 32 (16 cover steps).
//
//	go test ./client -run '^$' -bench BenchmarkGuardShaping -benchtime 20x
func BenchmarkGuardShaping(b *testing.B) {
	for _, c := range []struct {
		name  string
		shape bool
		cover int
	}{{"off", false, 0}, {"shape", true, 0}, {"shape+cover32", true, 32}} {
		b.Run(c.name, func(b *testing.B) {
			n := sharedNet(b)
			var mu sync.Mutex
			var bytesOnLink int64
			testGuardLinkWrap = func(l circuit.Link) circuit.Link { return &countLink{Link: l, mu: &mu, n: &bytesOnLink} }
			defer func() { testGuardLinkWrap = nil }()
			rc := startClient(b, n, b.TempDir(), func(cfg *Config) {
				cfg.Circuit.Mode = string(ModeAnonymous)
				cfg.Circuit.Shape, cfg.Circuit.CoverTokens = c.shape, c.cover
			}).api
			body, _ := json.Marshal(map[string]any{"model": n.modelID + ":anonymous", "prompt": testPrompt, "max_tokens": 16, "temperature": 0})
			mu.Lock()
			bytesOnLink = 0
			mu.Unlock()
			b.ResetTimer()
			for range b.N {
				resp, err := http.Post("http://"+rc+"/v1/completions", "application/json", bytes.NewReader(body))
				if err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
			}
			b.StopTimer()
			time.Sleep(200 * time.Millisecond) // let the last cover finish
			mu.Lock()
			b.ReportMetric(float64(bytesOnLink)/float64(b.N*16), "guard-bytes/token")
			mu.Unlock()
		})
	}
}

// countLink counts the bytes of every frame in either direction.
type countLink struct {
	circuit.Link
	mu *sync.Mutex
	n  *int64
}

func (c *countLink) WriteFrame(p []byte) error {
	c.mu.Lock()
	*c.n += int64(len(p))
	c.mu.Unlock()
	return c.Link.WriteFrame(p)
}

func (c *countLink) ReadFrame() ([]byte, error) {
	f, err := c.Link.ReadFrame()
	c.mu.Lock()
	*c.n += int64(len(f))
	c.mu.Unlock()
	return f, err
}

// TestNamedFailures: the relays endAudits marks faulty are those the
// gathering's errors are pinned on, through joins and wrapping, each once;
// not the guard (its failures are the link's) and not an error that names
// nobody (a timeout of the whole circuit).
func TestNamedFailures(t *testing.T) {
	a, b, g := keys.Fingerprint{1}, keys.Fingerprint{2}, keys.Fingerprint{3}
	err := errors.Join(
		fmt.Errorf("gathering: %w", &hopFailure{Relay: a, Err: errors.New("revealed a body it did not commit to")}),
		&hopFailure{Relay: b, Also: a, Err: errors.New("commitments disagree")},
		&hopFailure{Relay: g, Guard: true, Err: errors.New("link closed")},
		&hopFailure{Err: errors.New("client: circuit: deadline exceeded")},
	)
	got := named(err)
	if !slices.Equal(got, []keys.Fingerprint{a, b}) {
		t.Fatalf("named = %v, want [a b]", got)
	}
	if named(errors.New("plain")) != nil || named(nil) != nil {
		t.Fatal("named found a relay in an error that names none")
	}
}
