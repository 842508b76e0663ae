package verify

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"

	"github.com/unfed/unfed/compute/model"
	"github.com/unfed/unfed/compute/modeltest"
	"github.com/unfed/unfed/compute/tensor"
)

// sessionTicket runs stories260K's whole model over steps of ids as a
// committed hop would, signing each step's commitment; mutate may change a
// commitment before it is signed. It returns the version-2 ticket of the
// session: the last step's commitment with every earlier one as a check.
func sessionTicket(t testing.TB, sh *model.Shard, steps [][]int, mutate func(k int, c *Commitment)) *Ticket {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, 32))
	b := Binding{ModelID: "stories260K", First: 0, Last: sh.Last(), InKind: KindTokens, OutKind: KindLogits, Nonce: [32]byte{5}}
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
		in, out := NewHasher(KindTokens), NewHasher(KindLogits)
		in.Tokens(ids)
		lg, err := ms.ForwardTokens(ids, pos)
		if err != nil {
			t.Fatal(err)
		}
		out.Floats(lg)
		c, ok := ch.Commitment(&Step{Start: pos, Count: len(ids), In: in.Sum(), Out: out.Sum()})
		if !ok {
			t.Fatal("chain refused a step")
		}
		if mutate != nil {
			mutate(k, c)
		}
		if err := c.Sign(edSigner(priv), priv.Public().(ed25519.PublicKey)); err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
		starts = append(starts, pos)
		for _, id := range ids {
			prefix = append(prefix, byte(id>>24), byte(id>>16), byte(id>>8), byte(id))
		}
		pos += len(ids)
	}
	tk, err := NewTicket(cs[len(cs)-1], 0, starts, prefix)
	if err != nil {
		t.Fatal(err)
	}
	tk.Checks = cs[:len(cs)-1]
	back, err := DecodeTicket(tk.Append(nil))
	if err != nil {
		t.Fatal(err)
	}
	return back
}

// TestSessionTicket: a version-2 ticket checks every step it holds a
// commitment to, not only the last: an honest session is Honest, a wrong
// output committed at a middle step is Fraud, and a middle commitment to
// other inputs proves nothing.
func TestSessionTicket(t *testing.T) {
	sh, err := model.Load(modeltest.Path(t, "stories260K.gguf"), model.ShardOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Close()
	steps := [][]int{{1, 403, 407}, {9}, {30}, {41}}
	if v, err := Check(sessionTicket(t, sh, steps, nil), sh); err != nil || v != Honest {
		t.Fatalf("honest session: %v %v", v, err)
	}
	wrongOut := func(k int, c *Commitment) {
		if k == 1 {
			c.Out[0] ^= 1
		}
	}
	if v, err := Check(sessionTicket(t, sh, steps, wrongOut), sh); err != nil || v != Fraud {
		t.Fatalf("a wrong middle output: %v %v", v, err)
	}
	wrongIn := func(k int, c *Commitment) {
		if k == 2 {
			c.In[0] ^= 1
		}
	}
	if _, err := Check(sessionTicket(t, sh, steps, wrongIn), sh); !errors.Is(err, ErrInputs) {
		t.Fatalf("a middle commitment to other inputs: %v", err)
	}
	// A check of another session (nonce) or out of order does not parse.
	tk := sessionTicket(t, sh, steps, nil)
	other := *tk.Checks[0]
	other.Nonce[0] ^= 1
	bad := *tk
	bad.Checks = []*Commitment{&other}
	if _, err := DecodeTicket(bad.Append(nil)); err == nil {
		t.Fatal("a check of another session parsed")
	}
	bad.Checks = []*Commitment{tk.Checks[1], tk.Checks[0]}
	if _, err := DecodeTicket(bad.Append(nil)); err == nil {
		t.Fatal("checks out of order parsed")
	}
}

// BenchmarkSessionTicket is a verifier's cost for one whole-session ticket
// of stories260K (all 5 layers, token input): a prompt of 8 then 56 decode
// steps, 64 checked commitments, re-executed on the relay kernels (what an
// honest ticket costs) and on the portable path (the confirmation of a
// Fraud); "session" is the hop's own compute of that session, for the
// ratio.
func BenchmarkSessionTicket(b *testing.B) {
	sh, err := model.Load(modeltest.Path(b, "stories260K.gguf"), model.ShardOptions{Threads: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer sh.Close()
	steps := [][]int{{1, 403, 407, 9, 30, 41, 52, 63}}
	for i := range 56 {
		steps = append(steps, []int{100 + i})
	}
	tk := sessionTicket(b, sh, steps, nil)
	b.Logf("ticket: %d bytes, %d checks", len(tk.Append(nil)), len(tk.Checks))
	b.Run("session", func(b *testing.B) {
		for b.Loop() {
			ms, err := sh.NewSession(model.SessionOptions{})
			if err != nil {
				b.Fatal(err)
			}
			pos := 0
			for _, ids := range steps {
				if _, err := ms.ForwardTokens(ids, pos); err != nil {
					b.Fatal(err)
				}
				pos += len(ids)
			}
			ms.Close()
		}
	})
	b.Run("relay-kernels", func(b *testing.B) {
		for b.Loop() {
			if v, err := Check(tk, sh); err != nil || v != Honest {
				b.Fatal(v, err)
			}
		}
	})
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
