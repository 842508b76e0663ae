package mpc

import (
	"context"
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/unfed/unfed/compute/mpc/mpctest"
)

var (
	storiesShape = Config{Dim: 64, NHeads: 8, NKVHeads: 4, HeadDim: 8, FFN: 172, Vocab: 512, NormEps: 1e-5, RopeTheta: 10000, RopeAdjacentPairs: true}
	// qwen2.5-0.5B block shape; the vocabulary is cut to 32000 here to keep
	// the random embedding table within the shared machine's memory (the
	// DPF over 151936 is measured in package dpf).
	qwenShape = Config{Dim: 896, NHeads: 14, NKVHeads: 2, HeadDim: 64, FFN: 4864, Vocab: 32000, NormEps: 1e-6, RopeTheta: 1000000}
)

// BenchmarkUpload reports the client's upload per token to party B (A gets
// the same minus the shares, plus a 16-byte seed) at several context
// lengths: PREP and STEP together, and the STEP alone (what is left on the
// critical path once the PREP went ahead).
func BenchmarkUpload(b *testing.B) {
	for _, sh := range []struct {
		name string
		c    Config
	}{{"stories", storiesShape}, {"qwen0.5b", qwenShape}} {
		for _, ctx := range []int{1, 64, 512} {
			b.Run(fmt.Sprintf("%s/ctx%d", sh.name, ctx), func(b *testing.B) {
				var up Upload
				var upA int
				for b.Loop() {
					d, _ := NewDealer(sh.c, Params{}, mpctest.NewRand(1))
					for i := 0; i < ctx; i++ {
						if _, _, err := d.Prep(); err != nil {
							b.Fatal(err)
						}
						var err error
						if _, _, up, err = d.TokenStats(i % sh.c.Vocab); err != nil {
							b.Fatal(err)
						}
						upA = up.TotalA
					}
				}
				b.ReportMetric(float64(up.TokenKey), "tokenkey-B")
				b.ReportMetric(float64(up.Correlated), "corr-B")
				b.ReportMetric(float64(up.LUTKeys), "lutkeys-B")
				b.ReportMetric(float64(up.TotalB), "total-B")
				b.ReportMetric(float64(upA), "total-A")
				b.ReportMetric(float64(up.TotalB-up.PrepB), "step-B")
			})
		}
	}
}

// stepShapes are the shapes and context lengths of BenchmarkStep and
// BenchmarkDeal.
var stepShapes = []struct {
	name string
	c    Config
	ctx  int
}{{"stories", storiesShape, 32}, {"qwen0.5b", qwenShape, 8}}

// BenchmarkStep measures one MPC step (both parties, in memory, run
// concurrently) at the given context length, against the plaintext block 0.
func BenchmarkStep(b *testing.B) {
	for _, sh := range stepShapes {
		b.Run(sh.name, func(b *testing.B) {
			w := randomWeights(sh.c, 1, false)
			s := newSession(b, w, 3, Options{})
			for i := 0; i < sh.ctx-1; i++ {
				s.step(b, i%sh.c.Vocab)
			}
			toks := make([]int, sh.ctx)
			start := time.Now()
			if _, err := ReferenceBlock0(w, toks); err != nil {
				b.Fatal(err)
			}
			plain := time.Since(start) / time.Duration(sh.ctx)
			var mpc, prep, deal time.Duration
			var st Stats
			var sent int
			for b.Loop() {
				// one step at position ctx-1, on a copy of the session state
				d := *s.d
				pa, pb := *s.pa, *s.pb
				ss := &session{d: &d, pa: &pa, pb: &pb, ea: s.ea, eb: s.eb}
				s.ea.Sent = 0
				t0 := time.Now()
				prA, prB, err := ss.d.Prep()
				if err != nil {
					b.Fatal(err)
				}
				ma, mb, err := ss.d.Token(7)
				if err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				var wg sync.WaitGroup
				var errA, errB error
				wg.Add(2)
				go func() { defer wg.Done(); errA = pa.Prep(prA, true) }()
				go func() { defer wg.Done(); errB = pb.Prep(prB, true) }()
				wg.Wait()
				if errA != nil || errB != nil {
					b.Fatalf("prep: A: %v, B: %v", errA, errB)
				}
				t2 := time.Now()
				if _, _, errA, errB := ss.run(ma, mb); errA != nil || errB != nil {
					b.Fatalf("step: A: %v, B: %v", errA, errB)
				}
				deal += t1.Sub(t0)
				prep += t2.Sub(t1)
				mpc += time.Since(t2)
				st = pa.Stats()
				sent = s.ea.Sent
			}
			n := time.Duration(b.N)
			b.ReportMetric(float64(st.Rounds), "rounds")
			b.ReportMetric(float64(sent), "A->B-bytes")
			b.ReportMetric(float64(plain.Microseconds()), "plain-us/pos")
			// The parties' online stage (both at once, in memory, from the
			// STEP to the output shares), their offline work on the PREP
			// (evaluating its lookup keys), and the client's dealing,
			// separately; the ratio of the whole stage to plaintext.
			b.ReportMetric(float64((mpc / n).Microseconds()), "mpc-us")
			b.ReportMetric(float64((prep / n).Microseconds()), "prep-us")
			b.ReportMetric(float64((deal / n).Microseconds()), "deal-us")
			b.ReportMetric(float64((mpc+prep)/n)/float64(plain), "mpc/plain")
		})
	}
}

// BenchmarkEmbedRows is the embedding inner product of one MPC step for the
// qwen2.5-0.5B shape (V = 151936, rows of 2*896 int16): the part of a
// party's step that grows with the vocabulary. The table is 545 MB, read
// once per token.
func BenchmarkEmbedRows(b *testing.B) {
	const vocab, dim = 151936, 896
	table := make([]int16, vocab*2*dim)
	for i := range table {
		table[i] = int16(i*2654435761) >> 2
	}
	yE, yN := make([]uint64, vocab), make([]uint64, vocab)
	for i := range yE {
		yE[i] = uint64(i) * 0x9e3779b97f4a7c15
		yN[i] = yE[i] << 3
	}
	b.SetBytes(int64(2 * len(table)))
	for b.Loop() {
		embedRows(table, yE, yN, dim)
	}
}

// BenchmarkTableRead is the floor under BenchmarkEmbedRows: reading the
// 545 MB of the qwen2.5-0.5B shape's table once, as two 64-bit streams
// through the cheapest kernel there is (a dot product), on one thread.
// No secure embedding can read less per token and party (spec 05 §6.1).
func BenchmarkTableRead(b *testing.B) {
	const words = 151936 * 2 * 896 * 2 / 8 / 2
	x, y := make([]uint64, words), make([]uint64, words)
	for i := range x {
		x[i], y[i] = uint64(i), uint64(i)*3
	}
	b.SetBytes(16 * words)
	var sink uint64
	for b.Loop() {
		sink += dotU64(x, y)
	}
	if sink == 1 {
		b.Log(sink)
	}
}

// BenchmarkDeal is the client's dealing of one step (Dealer.Prep plus the
// token's key) with the randomness source the client uses, crypto/rand, at
// the positions of BenchmarkStep.
func BenchmarkDeal(b *testing.B) {
	for _, sh := range stepShapes {
		b.Run(sh.name, func(b *testing.B) {
			d, err := NewDealer(sh.c, Params{}, rand.Reader)
			if err != nil {
				b.Fatal(err)
			}
			for i := 0; i < sh.ctx-1; i++ {
				if _, _, err := d.Prep(); err != nil {
					b.Fatal(err)
				}
				if _, _, err := d.Token(i % sh.c.Vocab); err != nil {
					b.Fatal(err)
				}
			}
			for b.Loop() {
				dd := *d
				dd.masks = append([]uint64(nil), d.masks...)
				if _, _, err := dd.Prep(); err != nil {
					b.Fatal(err)
				}
				if _, _, err := dd.Token(7); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// stageBenchShapes are the shapes, context lengths and step rows of
// BenchmarkStageLayer: a token at context 1 and 64, and a prefill step of
// rows positions from position 0.
var stageBenchShapes = []struct {
	name string
	c    Config
	ctx  []int
	rows int
}{{"stories", storiesShape, []int{1, 64}, 128}, {"qwen0.5b", qwenShape, []int{1, 64}, 16}}

// BenchmarkStageLayer measures one layer of a confidential stage (spec/10
// §5) for one token at several context lengths, and for one prefill step of
// many positions (prefillN: the rounds are those of one token): both parties in memory, run
// concurrently, from the input shares to the output shares (online), the
// dealer's work for the step, the PREP sizes (what the dealer relay sends
// each party; the client sends none of it), the rounds, and the bytes A
// sends B. Multiply by the layers for a model: stories260K has 5, the
// qwen2.5-0.5B shape 24.
func BenchmarkStageLayer(b *testing.B) {
	for _, sh := range stageBenchShapes {
		for _, ctx := range append(append([]int(nil), sh.ctx...), -sh.rows) {
			rows := 1
			name := fmt.Sprintf("%s/ctx%d", sh.name, ctx)
			if ctx < 0 {
				// A prefill step: -ctx rows from position 0.
				rows, ctx = -ctx, 1
				name = fmt.Sprintf("%s/prefill%d", sh.name, rows)
			}
			b.Run(name, func(b *testing.B) {
				w := randomWeights(sh.c, 1, false)
				sw := &StageWeights{Config: sh.c, First: 0, Last: 1, Layers: []LayerWeights{*w.layer()}}
				ps, err := PrepareStage(sw, Params{})
				if err != nil {
					b.Fatal(err)
				}
				var online, deal, dealCPU, cpu time.Duration
				var st Stats
				var sent, prepA, prepB int
				// The parties' evaluation arenas carry over from one
				// iteration to the next, as from step to step in a session:
				// the figures are those of a session's steady state, not of
				// its first step's allocation (zeroing and faulting in tens of
				// MB on the qwen shape).
				var arenaA, arenaB []uint64
				for b.Loop() {
					b.StopTimer()
					d, _ := NewStageDealer(sh.c, 0, 1, Params{}, 0, mpctest.NewRand(3))
					pa, _ := NewStageParty(RoleA, ps, Options{})
					pb, _ := NewStageParty(RoleB, ps, Options{})
					pa.arena, pb.arena = arenaA, arenaB
					ea, eb := mpctest.Pipe(64)
					run := &stageRun{ps: ps, dealer: d, a: pa, b: pb, pa: ea, pb: eb}
					for i := 0; i < ctx; i++ {
						n := 1
						if i == ctx-1 {
							n = rows
						}
						x := make([]uint64, n*sh.c.Dim)
						t0, c0 := time.Now(), processCPU()
						ma, mb, err := d.Next(n)
						if err != nil {
							b.Fatal(err)
						}
						dt, dc := time.Since(t0), processCPU()-c0
						if err := pa.Prep(ma); err != nil {
							b.Fatal(err)
						}
						if err := pb.Prep(mb); err != nil {
							b.Fatal(err)
						}
						last := i == ctx-1
						if last {
							ea.Sent = 0
							b.StartTimer()
						}
						t1, c1 := time.Now(), processCPU()
						if _, _, err := stepBoth(context.Background(), run, x, x); err != nil {
							b.Fatal(err)
						}
						if last {
							online += time.Since(t1)
							cpu += processCPU() - c1
							deal += dt
							dealCPU += dc
							prepA, prepB = len(ma), len(mb)
							st, sent = pa.Stats(), ea.Sent
						}
					}
					arenaA, arenaB = pa.arena, pb.arena
				}
				n := time.Duration(b.N)
				b.ReportMetric(float64((online / n).Microseconds()), "online-us")
				b.ReportMetric(float64((cpu / n).Microseconds()), "online-cpu-us")
				b.ReportMetric(float64((deal / n).Microseconds()), "deal-us")
				b.ReportMetric(float64((dealCPU / n).Microseconds()), "deal-cpu-us")
				b.ReportMetric(float64(prepA), "prepA-bytes")
				b.ReportMetric(float64(prepB), "prepB-bytes")
				b.ReportMetric(float64(st.Rounds), "rounds")
				// A one-layer stage's rounds are one layer's and the stage's
				// one (spec/10 §5); in a stage of L layers each layer adds
				// StageRounds(L+1) - StageRounds(L) (TestStageRounds).
				b.ReportMetric(float64(StageRounds(2)-StageRounds(1)), "rounds/layer")
				b.ReportMetric(float64(sent), "A->B-bytes")
			})
		}
	}
}

// processCPU returns the CPU time (user and system) this process has used:
// on a shared machine the online CPU time of both parties is a steadier
// figure than their wall time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkMatvec: the parties' largest matrix product per layer of the
// qwen2.5-0.5B shape (W1 or W3, 4864 x 896) on one row of shares, with the
// weights stored in 32 bits and in 16 (the same values: wmat), for one
// position and for a prefill step of 16 (each weight row read once for
// the 16 positions, or, as before, once per position).
func BenchmarkMatvec(b *testing.B) {
	const rows, cols = 4864, 896
	r := mrand.New(mrand.NewPCG(1, 2))
	w := make([]int32, rows*cols)
	for i := range w {
		w[i] = int32(int16(r.Uint32()))
	}
	for _, n := range []int{1, 16} {
		x := make([]uint64, n*cols)
		for i := range x {
			x[i] = r.Uint64()
		}
		// int32-per-position: the order before the weights were read once
		// per step (one pass over W per position).
		for _, form := range []string{"int32-per-position", "int32", "int16"} {
			m := wmat{w32: w}
			if form == "int16" {
				m = newWmat(w)
			}
			b.Run(fmt.Sprintf("rows%d/%s", n, form), func(b *testing.B) {
				for b.Loop() {
					if form == "int32-per-position" {
						for i := 0; i < n; i++ {
							matvecRows(m, x[i*cols:(i+1)*cols], rows, cols, 1)
						}
						continue
					}
					matvecRows(m, x, rows, cols, n)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n*rows*cols), "ns/MAC")
			})
		}
	}
}

// BenchmarkPrepParts: party B taking a PREP of about 2 MB (stories260K, one
// layer, an 8-position step) that arrived as MPC_PREP fragments of an edge
// message each, joined first and taken (as relays did) or taken in pieces.
func BenchmarkPrepParts(b *testing.B) {
	w := randomWeights(storiesShape, 1, false)
	sw := &StageWeights{Config: storiesShape, First: 0, Last: 1, Layers: []LayerWeights{*w.layer()}}
	ps, err := PrepareStage(sw, Params{})
	if err != nil {
		b.Fatal(err)
	}
	d, _ := NewStageDealer(storiesShape, 0, 1, Params{}, 0, mpctest.NewRand(3))
	_, mb, err := d.Next(8)
	if err != nil {
		b.Fatal(err)
	}
	var parts [][]byte
	for rest := mb; len(rest) > 0; {
		n := min(len(rest), 1<<20-64)
		parts, rest = append(parts, rest[:n]), rest[n:]
	}
	p, _ := NewStageParty(RoleB, ps, Options{})
	for _, mode := range []string{"joined", "parts"} {
		b.Run(mode, func(b *testing.B) {
			b.SetBytes(int64(len(mb)))
			for b.Loop() {
				p.preps = nil
				var err error
				if mode == "joined" {
					msg := make([]byte, 0, len(mb))
					for _, f := range parts {
						msg = append(msg, f...)
					}
					err = p.Prep(msg)
				} else {
					err = p.PrepParts(parts)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Logf("%d bytes in %d fragments", len(mb), len(parts))
}

// BenchmarkStageDealRecycle measures a stage dealer of stories260K's
// second stage (3 layers) dealing 32 one-position steps from position 0,
// making new PREP messages ("new") or dealing into the last step's
// (Recycle, as the dealer relay does once it has sent them).
func BenchmarkStageDealRecycle(b *testing.B) {
	for _, mode := range []string{"new", "recycled"} {
		b.Run(mode, func(b *testing.B) {
			var bytes int64
			for b.Loop() {
				d, err := NewStageDealer(storiesShape, 2, 5, Params{}, 64, mpctest.NewRand(3))
				if err != nil {
					b.Fatal(err)
				}
				for range 32 {
					ma, mb, err := d.Next(1)
					if err != nil {
						b.Fatal(err)
					}
					bytes += int64(len(ma) + len(mb))
					if mode == "recycled" {
						d.Recycle(ma, mb)
					}
				}
			}
			b.ReportMetric(float64(bytes)/float64(b.N)/32, "prep-bytes/step")
		})
	}
}
