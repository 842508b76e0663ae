package hop_test

import (
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/unfed/unfed/compute/modeltest"

	"github.com/unfed/unfed/compute/gguf"
	"github.com/unfed/unfed/compute/model"
	"github.com/unfed/unfed/compute/tokenizer"
	"github.com/unfed/unfed/relay/hop"
	"github.com/unfed/unfed/relay/hop/hoptest"
)

const modelID = "stories260K"

func loadShard(t testing.TB, first, last int, lim model.Limits) *model.Shard {
	t.Helper()
	sh, err := model.Load(modeltest.Path(t, "stories260K.gguf"), model.ShardOptions{First: first, Last: last, Threads: 1, Limits: lim})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sh.Close() })
	return sh
}

func newService(t testing.TB, sh *model.Shard, mod func(*hop.Config)) *hop.Service {
	t.Helper()
	cfg := hop.Config{ModelID: modelID, Shard: sh, AllowPlain: true}
	if mod != nil {
		mod(&cfg)
	}
	s, err := hop.NewService(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func prompt(t testing.TB) []int {
	t.Helper()
	f, err := gguf.Open(modeltest.Path(t, "stories260K.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tok, err := tokenizer.FromGGUF(f)
	if err != nil {
		t.Fatal(err)
	}
	return tok.Encode("Once upon a time", true)
}

func newSecret(t testing.TB) *hop.EdgeSecret {
	var s hop.EdgeSecret
	if _, err := rand.Read(s[:]); err != nil {
		t.Fatal(err)
	}
	return &s
}

// plainSetups returns the SETUPs for a plain-input chain over shards, with a
// fresh edge secret between each pair of neighbours.
func plainSetups(t testing.TB, shards []*model.Shard, dt hop.DType, topK int) []*hop.Setup {
	var out []*hop.Setup
	var in *hop.EdgeSecret
	for i, sh := range shards {
		s := &hop.Setup{Role: hop.RoleCompute, Input: hop.InputActivations, DType: dt, First: sh.First(),
			Last: sh.Last(), ModelID: modelID, TopK: topK, In: in}
		if i == 0 {
			s.Input = hop.InputTokens
		}
		if i < len(shards)-1 {
			in = newSecret(t)
			s.Out, s.OutHops = in, 1
		}
		out = append(out, s)
	}
	return out
}

// client drives the compute hops of a circuit as the real client would:
// over a hoptest.Chain or over a relay/origin circuit. Compute hop i is
// transport position i+offset (the guard takes position 0 on a real circuit).
type client struct {
	t      testing.TB
	sendFn func(pos int, msg []byte) error
	recvFn func(ctx context.Context) (int, []byte, error)
	offset int
}

func chainClient(t testing.TB, chain *hoptest.Chain) *client {
	return &client{t: t, sendFn: chain.Send, recvFn: func(ctx context.Context) (int, []byte, error) {
		r, err := chain.Recv(ctx)
		return r.Hop, r.Data, err
	}}
}

func (c *client) send(i int, m hop.Msg) {
	c.t.Helper()
	if err := c.sendFn(i+c.offset, m.Append(nil)); err != nil {
		c.t.Fatal(err)
	}
}

// recv returns the next reply, failing after 30 s.
func (c *client) recv() (int, hop.Msg) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	from, b, err := c.recvFn(ctx)
	if err != nil {
		c.t.Fatal(err)
	}
	m, err := hop.Decode(b)
	if err != nil {
		c.t.Fatal(err)
	}
	return from - c.offset, m
}

// setupAll sends every SETUP and checks every SETUP_OK.
func (c *client) setupAll(setups []*hop.Setup) {
	c.t.Helper()
	for i, s := range setups {
		c.send(i, s)
	}
	for range setups {
		i, m := c.recv()
		ok, isOK := m.(*hop.SetupOK)
		if !isOK {
			c.t.Fatalf("hop %d answered SETUP with %v", i, m)
		}
		if ok.First != setups[i].First || ok.Last != setups[i].Last || ok.ModelID != modelID {
			c.t.Fatalf("hop %d SETUP_OK %+v", i, ok)
		}
	}
}

// expectError waits for an ERROR of code from hop i.
func (c *client) expectError(i int, code hop.Code) *hop.Error {
	c.t.Helper()
	from, m := c.recv()
	e, ok := m.(*hop.Error)
	if !ok || from != i || !errors.Is(e, &hop.Error{Code: code}) {
		c.t.Fatalf("got %v from hop %d, want ERROR %v from hop %d", m, from, code, i)
	}
	return e
}

// logits sends TOKENS to hop 0 and waits for the LOGITS.
func (c *client) logits(start int, ids []int) *hop.Logits {
	c.t.Helper()
	c.send(0, &hop.Tokens{Start: start, IDs: ids})
	i, m := c.recv()
	lg, ok := m.(*hop.Logits)
	if !ok {
		c.t.Fatalf("hop %d answered TOKENS with %v", i, m)
	}
	if lg.Pos != start+len(ids)-1 {
		c.t.Fatalf("LOGITS for position %d, want %d", lg.Pos, start+len(ids)-1)
	}
	return lg
}

// greedy picks the next token: the first top-k entry, or the dense argmax
// with ties to the lower id.
func greedy(lg *hop.Logits) int {
	if lg.TopK != nil {
		return lg.TopK[0].ID
	}
	return hop.TopK(lg.Dense, 1)[0].ID
}

// localGreedy generates n tokens after ids with the unsplit model.
func localGreedy(t testing.TB, ids []int, n int) (gen []int, first []float32) {
	t.Helper()
	sh := loadShard(t, 0, 0, model.Limits{})
	ss, err := sh.NewSession(model.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	lg, err := ss.ForwardTokens(ids, 0)
	if err != nil {
		t.Fatal(err)
	}
	first = append([]float32(nil), lg...)
	pos := len(ids)
	for range n {
		next := hop.TopK(lg, 1)[0].ID
		gen = append(gen, next)
		if lg, err = ss.ForwardTokens([]int{next}, pos); err != nil {
			t.Fatal(err)
		}
		pos++
	}
	return gen, first
}
