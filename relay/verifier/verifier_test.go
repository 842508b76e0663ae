package verifier

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/unfed/unfed/compute/model"
	"github.com/unfed/unfed/compute/modeltest"
	"github.com/unfed/unfed/compute/mpc"
	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/relay/verify"
	"github.com/unfed/unfed/relay/verify/verifytest"
)

type harness struct {
	v       *Verifier
	mu      sync.Mutex
	proofs  [][]byte
	results chan verify.Verdict
	loads   int
}

// newHarness starts a verifier of stories260K for which the relays in
// listed are compute relays of the whole model.
func newHarness(t *testing.T, sh *model.Shard, listed map[[32]byte]bool, mod func(*Config)) *harness {
	h := &harness{results: make(chan verify.Verdict, 16)}
	cfg := Config{
		ModelID: "stories260K",
		Load: func(first, last int) (*model.Shard, func(), error) {
			h.mu.Lock()
			h.loads++
			h.mu.Unlock()
			if first != sh.First() || last != sh.Last() {
				return nil, nil, errors.New("no such shard")
			}
			return sh, func() {}, nil
		},
		Signer: func(id [32]byte, m string, first, last int) bool {
			return listed[id] && m == "stories260K" && first == 0 && last == sh.Last()
		},
		Prove: func(_ context.Context, p []byte) error {
			h.mu.Lock()
			h.proofs = append(h.proofs, p)
			h.mu.Unlock()
			return nil
		},
		Checked: func(v verify.Verdict, err error) {
			if err != nil {
				t.Errorf("check: %v", err)
			}
			h.results <- v
		},
	}
	if mod != nil {
		mod(&cfg)
	}
	v, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	h.v = v
	return h
}

func (h *harness) verdict(t *testing.T) verify.Verdict {
	t.Helper()
	select {
	case v := <-h.results:
		return v
	case <-time.After(2 * time.Minute):
		t.Fatal("no verdict")
	}
	return 0
}

// storiesShard loads the whole stories260K model as one shard, one thread.
func storiesShard(t *testing.T) *model.Shard {
	t.Helper()
	sh, err := model.Load(modeltest.Path(t, "stories260K.gguf"), model.ShardOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sh.Close() })
	return sh
}

// newSigner returns a fresh relay identity and its public key as the
// verifier's signer set keys it.
func newSigner(t *testing.T) (*keys.Identity, [32]byte) {
	t.Helper()
	id, err := keys.NewIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var pub [32]byte
	copy(pub[:], id.Public)
	return id, pub
}

// TestVerifierFraud: a ticket whose commitment claims a wrong output is
// re-executed, judged Fraud on both paths, and its bytes go to the
// authorities as the proof; an honest ticket yields no proof. Replays,
// forged signatures, unlisted signers, garbage and more tickets of a signer
// already proved to cheat are refused without re-execution.
func TestVerifierFraud(t *testing.T) {
	sh := storiesShard(t)
	id, pub := newSigner(t)
	other, pub2 := newSigner(t)
	stranger, _ := newSigner(t)
	h := newHarness(t, sh, map[[32]byte]bool{pub: true, pub2: true}, nil)
	ids := []int{1, 5, 9, 20}

	honest := verifytest.TokenTicket(t, sh, "stories260K", other, ids, nil)
	if err := h.v.Accept(1, honest); err != nil {
		t.Fatal(err)
	}
	if v := h.verdict(t); v != verify.Honest {
		t.Fatalf("honest ticket: %v", v)
	}
	bad := [32]byte{1}
	fraud := verifytest.TokenTicket(t, sh, "stories260K", id, ids, &bad)
	if err := h.v.Accept(1, fraud); err != nil {
		t.Fatal(err)
	}
	if v := h.verdict(t); v != verify.Fraud {
		t.Fatalf("fraud ticket: %v", v)
	}
	h.mu.Lock()
	if len(h.proofs) != 1 || string(h.proofs[0]) != string(fraud) {
		t.Fatalf("%d proofs sent, want the fraud ticket", len(h.proofs))
	}
	loads := h.loads
	h.mu.Unlock()

	forged := verifytest.TokenTicket(t, sh, "stories260K", other, ids, &[32]byte{2})
	forged[len(forged)-4*len(ids)-16-3] ^= 1 // a signature byte (before dim, steps, start, count)
	unlisted := verifytest.TokenTicket(t, sh, "stories260K", stranger, ids, &bad)
	for _, c := range []struct {
		name string
		b    []byte
		want error
	}{
		{"replay", honest, ErrReplay},
		{"proven signer", verifytest.TokenTicket(t, sh, "stories260K", id, ids[:3], &bad), ErrProven},
		{"forged", forged, verify.ErrSignature},
		{"unlisted", unlisted, ErrSigner},
		{"garbage", []byte{1, 2, 3}, nil},
	} {
		err := h.v.Accept(2, c.b)
		if err == nil || (c.want != nil && !errors.Is(err, c.want)) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.loads != loads || len(h.proofs) != 1 {
		t.Fatalf("refused tickets were re-executed (%d loads, was %d) or proved (%d)", h.loads, loads, len(h.proofs))
	}
}

// TestVerifierPortable: a verifier on the portable path alone (Portable)
// judges an honest ticket Honest and a wrong output Fraud, and sends the
// fraud ticket as the proof.
func TestVerifierPortable(t *testing.T) {
	sh := storiesShard(t)
	id, pub := newSigner(t)
	h := newHarness(t, sh, map[[32]byte]bool{pub: true}, func(c *Config) { c.Portable = true })
	ids := []int{1, 5, 9, 20}
	if err := h.v.Accept(1, verifytest.TokenTicket(t, sh, "stories260K", id, ids, nil)); err != nil {
		t.Fatal(err)
	}
	if v := h.verdict(t); v != verify.Honest {
		t.Fatalf("honest ticket: %v", v)
	}
	fraud := verifytest.TokenTicket(t, sh, "stories260K", id, ids[:3], &[32]byte{1})
	if err := h.v.Accept(1, fraud); err != nil {
		t.Fatal(err)
	}
	if v := h.verdict(t); v != verify.Fraud {
		t.Fatalf("fraud ticket: %v", v)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.proofs) != 1 || string(h.proofs[0]) != string(fraud) {
		t.Fatalf("%d proofs sent, want the fraud ticket", len(h.proofs))
	}
}

// TestVerifierBounds: a circuit submits at most PerCircuit tickets and
// the queue holds at most Queue; both refuse before any work.
func TestVerifierBounds(t *testing.T) {
	sh := storiesShard(t)
	id, pub := newSigner(t)
	block := make(chan struct{})
	h := newHarness(t, sh, map[[32]byte]bool{pub: true}, func(c *Config) {
		c.PerCircuit, c.Queue = 2, 1
		load := c.Load
		c.Load = func(f, l int) (*model.Shard, func(), error) {
			<-block
			return load(f, l)
		}
	})
	tk := func(i int) []byte { return verifytest.TokenTicket(t, sh, "stories260K", id, []int{1, i}, nil) }
	// The worker takes the first and blocks; the second fills the queue.
	if err := h.v.Accept(7, tk(1)); err != nil {
		t.Fatal(err)
	}
	if err := h.v.Accept(7, tk(2)); err != nil {
		// The worker may not have taken the first yet: then the queue is full.
		if !errors.Is(err, ErrBusy) {
			t.Fatal(err)
		}
	}
	if err := h.v.Accept(7, tk(3)); !errors.Is(err, ErrCircuitLimit) {
		t.Fatalf("third ticket on a circuit of limit 2: %v", err)
	}
	// Another circuit: the queue (of one) is full or soon will be.
	var busy bool
	for i := 4; i < 8 && !busy; i++ {
		busy = errors.Is(h.v.Accept(uint64(i), tk(i)), ErrBusy)
	}
	if !busy {
		t.Fatal("a queue of one took every ticket")
	}
	close(block)
}

// partyHarness is a verifier of stories260K that also checks party tickets
// of the two-stage session s, whose parties in listed are MPC parties of
// their stages.
func partyHarness(t *testing.T, s *verifytest.Session, listed map[[32]byte]bool) *harness {
	return newHarness(t, storiesShard(t), nil, func(c *Config) {
		c.Layers = s.Layers
		c.PartySigner = func(id [32]byte, m string, first, last int) bool {
			for _, st := range s.Stages {
				for _, p := range st.Parties {
					if p.Identity() == id {
						return listed[id] && m == "stories260K" && first == st.First && last == st.Last
					}
				}
			}
			return false
		}
		c.LoadStage = func(first, last int) (*mpc.PreparedStage, func(), error) {
			for _, st := range s.Stages {
				if st.First == first && st.Last == last {
					return st.PS, func() {}, nil
				}
			}
			return nil, nil, errors.New("no such stage")
		}
	})
}

// TestVerifierPartyFraud: a party ticket of an honest party is Honest and
// yields no proof; one of a party that computed a wrong output share (and
// committed to what it sent) is Fraud and its bytes go to the authorities;
// both as windowed tickets, the step before the window as state rows.
// Replays, forged signatures and parties not listed for that stage are
// refused before any re-execution; a verifier without PartySigner refuses
// party tickets.
func TestVerifierPartyFraud(t *testing.T) {
	s := verifytest.NewSession(t, modeltest.Path(t, "stories260K.gguf"), "stories260K", [][2]int{{0, 2}, {2, 5}}, 3)
	s.Miscompute = func(stage int, role mpc.Role, step int, y []uint64) {
		if stage == 0 && role == mpc.RoleB && step == 1 {
			y[0] ^= 1 << 30
		}
	}
	s.Step(t, []int{1, 403})
	s.Step(t, []int{29})
	cheater, honestP := s.Stages[0].Parties[mpc.RoleB], s.Stages[1].Parties[mpc.RoleA]
	h := partyHarness(t, s, map[[32]byte]bool{cheater.Identity(): true, honestP.Identity(): true})
	// Windowed tickets (spec/11 §7.4): step 0 as state rows, step 1 re-executed.
	honest := s.Window(1, mpc.RoleA, 1, 1).Append(nil)
	if err := h.v.Accept(1, honest); err != nil {
		t.Fatal(err)
	}
	if v := h.verdict(t); v != verify.Honest {
		t.Fatalf("honest party's ticket: %v", v)
	}
	fraud := s.Window(0, mpc.RoleB, 1, 1).Append(nil)
	if err := h.v.Accept(1, fraud); err != nil {
		t.Fatal(err)
	}
	if v := h.verdict(t); v != verify.Fraud {
		t.Fatalf("cheating party's ticket: %v", v)
	}
	h.mu.Lock()
	if len(h.proofs) != 1 || !bytes.Equal(h.proofs[0], fraud) {
		t.Fatalf("%d proofs sent, want the cheater's ticket", len(h.proofs))
	}
	h.mu.Unlock()
	forged := s.Ticket(1, mpc.RoleA)
	forged.Commitment.Sig[5] ^= 1
	for _, c := range []struct {
		name string
		b    []byte
		want error
	}{
		{"replay", honest, ErrReplay},
		{"forged", forged.Append(nil), verify.ErrSignature},
		{"unlisted", s.Ticket(1, mpc.RoleB).Append(nil), ErrSigner},
		{"proven", fraud, ErrProven},
	} {
		if err := h.v.Accept(2, c.b); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	plain := newHarness(t, storiesShard(t), nil, nil)
	if err := plain.v.Accept(1, honest); !errors.Is(err, ErrNoParties) {
		t.Fatalf("a verifier without parties: %v", err)
	}
	select {
	case v := <-h.results:
		t.Fatalf("a refused ticket was re-executed: %v", v)
	default:
	}
}
