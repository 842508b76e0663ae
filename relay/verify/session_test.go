package verify

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/unfed/unfed/compute/model"
	"github.com/unfed/unfed/compute/modeltest"
	"github.com/unfed/unfed/compute/synth"
	"github.com/unfed/unfed/compute/tensor"
)

// sessionTicket runs sh over steps of ids as a committed hop would,
// signing each step's commitment; mutate may change what the hop commits
// to at a step (before the chains fold it in). A first shard takes the ids
// as tokens; another shard takes, per position, a deterministic f32 row
// derived from the id (as rows from the hop before it). It returns the
// session's ticket: the last step's commitment, whose chains bind every
// step.
func sessionTicket(t testing.TB, sh *model.Shard, steps [][]int, mutate func(k int, s *Step)) *Ticket {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, 32))
	b := Binding{ModelID: "m", First: sh.First(), Last: sh.Last(), InKind: KindTokens, OutKind: KindF32, Nonce: [32]byte{5}}
	dim := 0
	if sh.First() > 0 {
		b.InKind, dim = KindF32, sh.Config().Dim
	}
	if sh.IsLast() {
		b.OutKind = KindLogits
	}
	copy(b.Identity[:], priv.Public().(ed25519.PublicKey))
	ch := NewChain(b)
	ms, err := sh.NewSession(model.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Close()
	var cs []*Commitment
	var starts []int
	var prefix []byte
	pos := 0
	for k, ids := range steps {
		in, out := NewHasher(b.InKind), NewHasher(b.OutKind)
		var res []float32
		if dim == 0 {
			in.Tokens(ids)
			res, err = ms.ForwardTokens(ids, pos)
			for _, id := range ids {
				prefix = append(prefix, byte(id>>24), byte(id>>16), byte(id>>8), byte(id))
			}
		} else {
			rows := make([]float32, len(ids)*dim)
			for i := range rows {
				rows[i] = float32((ids[i/dim]*31+i%dim)%97)/97 - 0.5
			}
			in.Floats(rows)
			res, err = ms.ForwardActivations(rows, len(ids), pos)
			prefix = AppendFloats(prefix, KindF32, rows)
		}
		if err != nil {
			t.Fatal(err)
		}
		out.Floats(res)
		st := &Step{Start: pos, Count: len(ids), In: in.Sum(), Out: out.Sum()}
		if mutate != nil {
			mutate(k, st)
		}
		c, ok := ch.Commitment(st)
		if !ok {
			t.Fatal("chain refused a step")
		}
		if err := c.Sign(edSigner(priv), priv.Public().(ed25519.PublicKey)); err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
		starts = append(starts, pos)
		pos += len(ids)
	}
	tk, err := NewTicket(cs[len(cs)-1], dim, starts, prefix)
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeTicket(tk.Append(nil))
	if err != nil {
		t.Fatal(err)
	}
	return back
}

// TestSessionTicket: a ticket checks every step of the session up to its
// commitment, not only the last, through the one signature over the
// chains: an honest session is Honest, a wrong output committed at a
// middle step is Fraud, and a middle step committed on other inputs proves
// nothing. A commitment whose output chain was altered (and re-signed) is
// Fraud even when the last output is right.
func TestSessionTicket(t *testing.T) {
	sh, err := model.Load(modeltest.Path(t, "stories260K.gguf"), model.ShardOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Close()
	steps := [][]int{{1, 403, 407}, {9}, {30}, {41}}
	honest := sessionTicket(t, sh, steps, nil)
	if v, err := Check(honest, sh); err != nil || v != Honest {
		t.Fatalf("honest session: %v %v", v, err)
	}
	wrongOut := func(k int, s *Step) {
		if k == 1 {
			s.Out[0] ^= 1
		}
	}
	if v, err := Check(sessionTicket(t, sh, steps, wrongOut), sh); err != nil || v != Fraud {
		t.Fatalf("a wrong middle output: %v %v", v, err)
	}
	// The output chain is what catches it: without it the ticket passes.
	mutateIgnoreOutChain = true
	v, err := Check(sessionTicket(t, sh, steps, wrongOut), sh)
	mutateIgnoreOutChain = false
	if err != nil || v != Honest {
		t.Fatalf("with the output chain ignored, a wrong middle output: %v %v (want the mutation to miss it)", v, err)
	}
	wrongIn := func(k int, s *Step) {
		if k == 2 {
			s.In[0] ^= 1
		}
	}
	if _, err := Check(sessionTicket(t, sh, steps, wrongIn), sh); !errors.Is(err, ErrInputs) {
		t.Fatalf("a middle step committed on other inputs: %v", err)
	}
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, 32))
	c := *honest.Commitment
	c.OutChain[31] ^= 1
	if err := c.Sign(edSigner(priv), priv.Public().(ed25519.PublicKey)); err != nil {
		t.Fatal(err)
	}
	altered := *honest
	altered.Commitment = &c
	if v, err := Check(&altered, sh); err != nil || v != Fraud {
		t.Fatalf("an altered output chain: %v %v", v, err)
	}
	// The signature covers the output chain.
	c.OutChain[31] ^= 1
	if _, err := Check(&altered, sh); !errors.Is(err, ErrSignature) {
		t.Fatalf("an output chain the signature does not cover: %v", err)
	}
}

// BenchmarkSessionTicket is a verifier's cost for one session ticket of
// stories260K (all 5 layers, token input): a prompt of 8 then 56 decode
// steps, one commitment binding all 57, re-executed on the relay kernels
// (what an honest ticket costs) and on the portable path (the confirmation
// of a Fraud); "session" is the hop's own compute of that session, for the
// ratio, measured in the same iterations as the check.
func BenchmarkSessionTicket(b *testing.B) {
	sh, err := model.Load(modeltest.Path(b, "stories260K.gguf"), model.ShardOptions{Threads: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer sh.Close()
	benchSession(b, sh, 56, true)
}

// BenchmarkSessionTicketSynth is BenchmarkSessionTicket on larger shapes
// from compute/synth (random weights, same code paths): llama-110m in F32
// cut to 6 layers, a middle hop [2,4) with f32 rows in and out, and the
// last hop [4,6) with the 32000-logit head; qwen2.5-0.5b in Q8_0 cut to 6
// layers, its middle hop [2,4). A prompt of 8 then 24 decode steps. The
// model files (≈ 0.4 GB and 0.2 GB) are written to a temporary directory.
func BenchmarkSessionTicketSynth(b *testing.B) {
	cases := []struct {
		shape       string
		dt          tensor.DType
		first, last int
	}{
		{"llama-110m", tensor.F32, 2, 4},
		{"llama-110m", tensor.F32, 4, 6},
		{"qwen2.5-0.5b", tensor.Q8_0, 2, 4},
	}
	dir := b.TempDir()
	for _, c := range cases {
		b.Run(fmt.Sprintf("%s-%v-[%d,%d)", c.shape, c.dt, c.first, c.last), func(b *testing.B) {
			path := filepath.Join(dir, fmt.Sprintf("%s-%v.gguf", c.shape, c.dt))
			if _, err := os.Stat(path); err != nil {
				shape := synth.Shapes[c.shape]
				shape.Layers = 6
				if err := synth.WriteFile(path, synth.Options{Shape: shape, DType: c.dt, Seed: 1}); err != nil {
					b.Fatal(err)
				}
			}
			sh, err := model.Load(path, model.ShardOptions{First: c.first, Last: c.last, Threads: 1})
			if err != nil {
				b.Fatal(err)
			}
			defer sh.Close()
			benchSession(b, sh, 24, false)
		})
	}
}

// benchSession measures the hop's own compute of a session (a prompt of 8
// then decode steps) and a verifier's check of its ticket, on the relay
// kernels and, with portable, on the portable path.
func benchSession(b *testing.B, sh *model.Shard, decode int, portable bool) {
	steps := [][]int{{1, 403, 407, 9, 30, 41, 52, 63}}
	for i := range decode {
		steps = append(steps, []int{100 + i})
	}
	tk := sessionTicket(b, sh, steps, nil)
	b.Logf("ticket: %d bytes, %d steps", len(tk.Append(nil)), len(tk.Steps))
	// Each iteration runs the hop's session and the check, in alternating
	// order, so load changes and cache warmth hit both alike; the ratio
	// is what verification adds per audited session.
	b.Run("session+check", func(b *testing.B) {
		var session, check time.Duration
		run := func() {
			t0 := time.Now()
			ms, err := sh.NewSession(model.SessionOptions{})
			if err != nil {
				b.Fatal(err)
			}
			pos := 0
			for _, s := range tk.Steps {
				if tk.Commitment.InKind == KindTokens {
					_, err = ms.ForwardTokens(decodeTokens(s.Data), pos)
				} else {
					_, err = ms.ForwardActivations(DecodeFloats(KindF32, s.Data), s.Count, pos)
				}
				if err != nil {
					b.Fatal(err)
				}
				pos += s.Count
			}
			ms.Close()
			session += time.Since(t0)
		}
		verify := func() {
			t0 := time.Now()
			if v, err := Check(tk, sh); err != nil || v != Honest {
				b.Fatal(v, err)
			}
			check += time.Since(t0)
		}
		for i := 0; b.Loop(); i++ {
			if i%2 == 0 {
				run()
				verify()
			} else {
				verify()
				run()
			}
		}
		b.ReportMetric(float64(session.Microseconds())/1e3/float64(b.N), "session-ms")
		b.ReportMetric(float64(check.Microseconds())/1e3/float64(b.N), "check-ms")
		b.ReportMetric(float64(check)/float64(session), "check/session")
	})
	if !portable {
		return
	}
	b.Run("portable", func(b *testing.B) {
		restore := tensor.UsePortable()
		defer restore()
		for b.Loop() {
			if v, err := Check(tk, sh); err != nil || v != Honest {
				b.Fatal(v, err)
			}
		}
	})
}

// decodeTokens decodes big-endian u32 token ids.
func decodeTokens(b []byte) []int {
	ids := make([]int, len(b)/4)
	for i := range ids {
		ids[i] = int(binary.BigEndian.Uint32(b[4*i:]))
	}
	return ids
}
