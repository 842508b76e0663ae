package hop_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/unfed/unfed/compute/model"
	"github.com/unfed/unfed/relay/hop"
	"github.com/unfed/unfed/relay/hop/hoptest"
)

// BenchmarkEdgeToken: what one decode-step token costs on one edge, outside
// compute: encode ACTIVATIONS (one row), seal, open, decode.
func BenchmarkEdgeToken(b *testing.B) {
	for _, dim := range []int{64, 896} {
		for _, dt := range []hop.DType{hop.F32, hop.F16} {
			b.Run(fmt.Sprintf("dim=%d/%v", dim, dt), func(b *testing.B) {
				r := rand.New(rand.NewPCG(1, 2))
				row := make([]float32, dim)
				for i := range row {
					row[i] = float32(r.NormFloat64())
				}
				s := newSecret(b)
				seal, _ := hop.NewSealer(s, hop.ChanData)
				open, _ := hop.NewOpener(s, hop.ChanData)
				var msg, env []byte
				b.SetBytes(int64(dim * dt.Size()))
				b.ReportAllocs()
				for b.Loop() {
					m := hop.Activations{Start: 7, N: 1, Dim: dim, DType: dt, Final: true, Data: row}
					msg = m.Append(msg[:0])
					var err error
					if env, err = seal.Seal(env[:0], msg); err != nil {
						b.Fatal(err)
					}
					pt, err := open.Open(env)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := hop.DecodeEdge(pt); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkLogits: top-k selection plus LOGITS encode and decode at the last
// hop, per token.
func BenchmarkLogits(b *testing.B) {
	for _, vocab := range []int{512, 32000, 151936} {
		for _, k := range []int{1, 40, 0} {
			b.Run(fmt.Sprintf("vocab=%d/k=%d", vocab, k), func(b *testing.B) {
				r := rand.New(rand.NewPCG(3, 4))
				lg := make([]float32, vocab)
				for i := range lg {
					lg[i] = float32(r.NormFloat64())
				}
				b.ReportAllocs()
				for b.Loop() {
					m := &hop.Logits{Pos: 5}
					if k > 0 {
						m.TopK = hop.TopK(lg, k)
					} else {
						m.Dense = lg
					}
					if _, err := hop.Decode(m.Append(nil)); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkChainToken and BenchmarkLocalToken: one decode step (position 5
// of "Once upon a time", truncated back after each) through three in-process
// hops and through the unsplit engine. (chain − local) / 3 is the added
// latency per hop per token beyond compute: codec, edge crypto, top-k and the
// goroutine hand-offs of the in-memory circuit (no links, no onion layers).
func BenchmarkChainToken(b *testing.B) {
	ids := prompt(b)
	shards := []*model.Shard{loadShard(b, 0, 2, model.Limits{}), loadShard(b, 2, 4, model.Limits{}), loadShard(b, 4, 5, model.Limits{})}
	var svcs []hoptest.Hop
	for _, sh := range shards {
		svcs = append(svcs, newService(b, sh, nil))
	}
	chain := hoptest.NewChain(1, svcs...)
	defer chain.Close()
	c := chainClient(b, chain)
	setups := plainSetups(b, shards, hop.F32, 40)
	c.setupAll(setups)
	c.logits(0, ids)
	p := len(ids)
	ctx := context.Background()
	tokens := (&hop.Tokens{Start: p, IDs: []int{42}}).Append(nil)
	trunc := (&hop.Truncate{Pos: p}).Append(nil)
	b.ResetTimer()
	for b.Loop() {
		if err := chain.Send(0, tokens); err != nil {
			b.Fatal(err)
		}
		r, err := chain.Recv(ctx)
		if err != nil || r.Hop != 2 {
			b.Fatalf("reply from %d: %v", r.Hop, err)
		}
		for i := range shards {
			chain.Send(i, trunc)
		}
	}
}

func BenchmarkLocalToken(b *testing.B) {
	ids := prompt(b)
	sh := loadShard(b, 0, 5, model.Limits{})
	ss, err := sh.NewSession(model.SessionOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer ss.Close()
	if _, err := ss.ForwardTokens(ids, 0); err != nil {
		b.Fatal(err)
	}
	p := len(ids)
	b.ResetTimer()
	for b.Loop() {
		lg, err := ss.ForwardTokens([]int{42}, p)
		if err != nil {
			b.Fatal(err)
		}
		hop.TopK(lg, 40)
		ss.Truncate(p)
	}
}

// BenchmarkRelayToken: BenchmarkChainToken over real circuit switches and an
// origin circuit (guard → [0,2) → [2,4) → [4,5)) joined by in-memory pipes:
// adds onion layers, cells, edge cells and the switches' goroutines.
func BenchmarkRelayToken(b *testing.B) {
	ids := prompt(b)
	shards := []*model.Shard{loadShard(b, 0, 2, model.Limits{}), loadShard(b, 2, 4, model.Limits{}), loadShard(b, 4, 5, model.Limits{})}
	var svcs []*hop.Service
	for _, sh := range shards {
		svcs = append(svcs, newService(b, sh, nil))
	}
	c, _ := relayNet(b, svcs)
	c.setupAll(plainSetups(b, shards, hop.F32, 40))
	c.logits(0, ids)
	p := len(ids)
	tokens := &hop.Tokens{Start: p, IDs: []int{42}}
	trunc := &hop.Truncate{Pos: p}
	b.ResetTimer()
	for b.Loop() {
		c.logits(p, tokens.IDs)
		for i := range shards {
			c.send(i, trunc)
		}
	}
}
