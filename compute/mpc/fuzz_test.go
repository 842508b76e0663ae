package mpc

import (
	"context"
	"testing"

	"github.com/unfed/unfed/compute/mpc/mpctest"
)

func FuzzDecodeStep(f *testing.F) {
	d, _ := NewDealer(smallCfg, Params{}, mpctest.NewRand(1))
	ma, mb, _ := d.Token(3)
	f.Add(ma)
	f.Add(mb)
	f.Add(ma[:30])
	f.Add([]byte{1, 1, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeStep(b)
		if err != nil {
			return
		}
		if got := m.encode(); string(got) != string(b) {
			t.Fatal("re-encoding differs")
		}
	})
}

func FuzzDecodePeer(f *testing.F) {
	f.Add(encodePeer(3, 2, []uint64{1, 2, 3}), 3)
	f.Add([]byte{1, 2, 0, 0}, 0)
	f.Fuzz(func(t *testing.T, b []byte, n int) {
		if n < 0 || n > 1<<16 {
			return
		}
		v, err := decodePeer(b, 3, 2, n)
		if err == nil && len(v) != n {
			t.Fatal("wrong count accepted")
		}
	})
}

func FuzzDecodeOutput(f *testing.F) {
	f.Add(encodeOutput(RoleA, 1, 2, []uint64{5, 6}))
	f.Add([]byte{1, 3, 0, 48})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeOutput(b)
		if err != nil {
			return
		}
		if string(encodeOutput(s.Role, s.Step, s.Pos, s.Vals)[:4]) != string(b[:4]) && s.Scale == OutScale {
			t.Fatal("header mismatch")
		}
		_, _ = Reconstruct(b, b)
	})
}

// FuzzPartyStep feeds arbitrary client messages to a party whose peer
// answers with arbitrary bytes: the step must fail cleanly or succeed,
// never panic.
func FuzzPartyStep(f *testing.F) {
	w := randomWeights(Config{Dim: 8, NHeads: 2, NKVHeads: 1, HeadDim: 4, FFN: 8, Vocab: 5, NormEps: 1e-5, RopeTheta: 10000, RopeAdjacentPairs: true}, 1, false)
	d, _ := NewDealer(w.Config, Params{}, mpctest.NewRand(1))
	ma, mb, _ := d.Token(2)
	f.Add(ma, []byte{})
	f.Add(mb, encodePeer(0, 1, make([]uint64, 3)))
	f.Fuzz(func(t *testing.T, msg, peerMsg []byte) {
		p, err := NewParty(RoleA, w, Options{})
		if err != nil {
			t.Fatal(err)
		}
		_, _ = p.Step(context.Background(), msg, &echoPeer{reply: peerMsg})
	})
}

type echoPeer struct{ reply []byte }

func (e *echoPeer) Send(context.Context, []byte) error { return nil }
func (e *echoPeer) Recv(context.Context) ([]byte, error) {
	return e.reply, nil
}
