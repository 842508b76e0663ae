package mpc

import (
	"context"
	"reflect"
	"testing"

	"github.com/unfed/unfed/compute/mpc/dpf"
	"github.com/unfed/unfed/compute/mpc/mpctest"
)

func FuzzDecodeStep(f *testing.F) {
	d, _ := NewDealer(smallCfg, Params{}, mpctest.NewRand(1))
	pa, pb, _ := d.Prep()
	ma, mb, _ := d.Token(3)
	for _, m := range [][]byte{ma, mb, pa, pb, ma[:21], pb[:30], {3, 1, 0, 0}, {3, 4, 1, 0}} {
		f.Add(m)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, kind := range []byte{kindStep, kindPrep} {
			m, err := decodeStepMsg(b, kind)
			if err != nil {
				continue
			}
			if got := m.encode(); string(got) != string(b) {
				t.Fatalf("kind %d: re-encoding differs", kind)
			}
		}
	})
}

func FuzzDecodePeer(f *testing.F) {
	f.Add(encodePeer(Version, 3, 2, []uint64{1, 2, 3}), 3)
	f.Add([]byte{1, 2, 0, 0}, 0)
	f.Fuzz(func(t *testing.T, b []byte, n int) {
		if n < 0 || n > 1<<16 {
			return
		}
		v, err := decodePeer(b, Version, 3, 2, n)
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

// FuzzPartyStep feeds an arbitrary PREP and STEP to a party whose peer
// answers with arbitrary bytes: they must fail cleanly or succeed, never
// panic.
func FuzzPartyStep(f *testing.F) {
	w := randomWeights(Config{Dim: 8, NHeads: 2, NKVHeads: 1, HeadDim: 4, FFN: 8, Vocab: 5, NormEps: 1e-5, RopeTheta: 10000, RopeAdjacentPairs: true}, 1, false)
	d, _ := NewDealer(w.Config, Params{}, mpctest.NewRand(1))
	pa, pb, _ := d.Prep()
	ma, mb, _ := d.Token(2)
	f.Add(pa, ma, []byte{})
	f.Add(pb, mb, encodePeer(Version, 0, 1, make([]uint64, 3)))
	f.Add(pa, pa, []byte{})
	f.Fuzz(func(t *testing.T, prep, msg, peerMsg []byte) {
		p, err := NewParty(RoleA, w, Options{})
		if err != nil {
			t.Fatal(err)
		}
		_ = p.Prep(prep, len(prep)%2 == 0)
		_, _ = p.Step(context.Background(), msg, &echoPeer{reply: peerMsg})
	})
}

type echoPeer struct{ reply []byte }

func (e *echoPeer) Send(context.Context, []byte) error { return nil }
func (e *echoPeer) Recv(context.Context) ([]byte, error) {
	return e.reply, nil
}

// FuzzDecodeShare: any accepted SHARE re-encodes to the same bytes and its
// values fit its rows and width.
func FuzzDecodeShare(f *testing.F) {
	for _, s := range []*Share{
		{Kind: ShareInput, Role: RoleA, Step: 1, Pos: 2, Rows: 1, Dim: 2, Vals: []uint64{1, 2}},
		{Kind: ShareReshare, Role: RoleB, Hash: [8]byte{9}, Step: 3, Pos: 5, Rows: 2, Dim: 1, Vals: []uint64{7, 8}},
		{Kind: ShareOutput, Role: RoleA, Rows: 1, Dim: 3, Vals: []uint64{1, 1 << 63, 0}},
	} {
		b := EncodeShare(s)
		f.Add(b)
		f.Add(b[:len(b)-3])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeShare(b)
		if err != nil {
			return
		}
		if len(s.Vals) != s.Rows*s.Dim || s.Rows < 1 || s.Rows > MaxStepRows {
			t.Fatalf("decoded %d values for %d x %d", len(s.Vals), s.Rows, s.Dim)
		}
		if string(EncodeShare(s)) != string(b) {
			t.Fatal("re-encoding differs")
		}
	})
}

// FuzzStagePrep: a stage party given arbitrary bytes as a PREP, then as an
// input, refuses them with an error and keeps its state; it never panics.
func FuzzStagePrep(f *testing.F) {
	w := randomWeights(smallCfg, 2, false)
	sw := &StageWeights{Config: smallCfg, First: 0, Last: 1, Layers: []LayerWeights{*w.layer()}}
	ps, err := PrepareStage(sw, Params{})
	if err != nil {
		f.Fatal(err)
	}
	d, _ := NewStageDealer(smallCfg, 0, 1, Params{}, 0, mpctest.NewRand(1))
	ma, mb, _ := d.Next(2)
	for _, m := range [][]byte{ma, mb, ma[:40], mb[:25], {4, 4, 0, 1}, {4, 4, 1, 0}} {
		f.Add(m)
	}
	// version 8 (two point keys per interpolated element), and A's first
	// key (a vector key: the first norm's rsqrt levels) with 3 elements or
	// read as a point key
	old := append([]byte(nil), ma...)
	old[0] = 8
	f.Add(old)
	const firstKey = stepHeader + 16 + 4 // A: header, seed, keys length
	if ma[firstKey] != dpf.VecVersion {
		f.Fatalf("A's first LUT key has version %d, want a vector key", ma[firstKey])
	}
	for _, mut := range [][2]byte{{3, 3}, {3, 1}, {0, dpf.Version}} {
		m := append([]byte(nil), ma...)
		m[firstKey+int(mut[0])] = mut[1]
		f.Add(m)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, role := range []Role{RoleA, RoleB} {
			p, err := NewStageParty(role, ps, Options{})
			if err != nil {
				t.Fatal(err)
			}
			// The same bytes in pieces (as a PREP arrives in edge
			// fragments), cut at a size the input chooses, are taken or
			// refused as the joined message is, and queue the same.
			pieces, _ := NewStageParty(role, ps, Options{})
			var parts [][]byte
			for rest, n := b, 1+len(b)%97; ; rest = rest[n:] {
				if len(rest) <= n {
					parts = append(parts, rest)
					break
				}
				parts = append(parts, rest[:n])
			}
			errParts := pieces.PrepParts(parts)
			if err := p.Prep(b); err != nil {
				if p.QueuedPreps() != 0 {
					t.Fatal("a refused PREP was queued")
				}
				if errParts == nil || pieces.QueuedPreps() != 0 {
					t.Fatalf("a PREP refused whole (%v) was taken in pieces of %d", err, 1+len(b)%97)
				}
				continue
			}
			if errParts != nil || !reflect.DeepEqual(pieces.preps, p.preps) {
				t.Fatalf("a PREP taken whole: in pieces of %d %v, or queued differently", 1+len(b)%97, errParts)
			}
			if _, err := p.Input(ShareInput, b); err == nil {
				t.Fatal("a PREP's bytes were taken as an input share")
			}
			// What a party takes, a relay can charge for (PrepRows).
			if n, err := PrepRows(b); err != nil || n < 1 {
				t.Fatalf("an accepted PREP: PrepRows %d, %v", n, err)
			}
		}
	})
}

// TestPrepRows: PrepRows reads a stage PREP's positions and refuses the
// entry stage's PREP, a STEP-kind header, rows 0 and a short header.
func TestPrepRows(t *testing.T) {
	d, _ := NewStageDealer(smallCfg, 0, 1, Params{}, 0, mpctest.NewRand(1))
	for _, rows := range []int{1, 3} {
		ma, mb, err := d.Next(rows)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range [][]byte{ma, mb} {
			if n, err := PrepRows(m); err != nil || n != rows {
				t.Fatalf("PrepRows = %d, %v; want %d", n, err, rows)
			}
		}
	}
	ed, _ := NewDealer(smallCfg, Params{}, mpctest.NewRand(1))
	pa, _, _ := ed.Prep()
	ma, _, _ := d.Next(2)
	kind := append([]byte(nil), ma...)
	kind[1] = kindStep
	zero := append([]byte(nil), ma...)
	zero[3] = 0
	for name, m := range map[string][]byte{"entry stage": pa, "step kind": kind, "rows 0": zero, "short": ma[:stepHeader-1]} {
		if _, err := PrepRows(m); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestPrepParts: a PREP taken in pieces of any sizes queues what Prep
// queues from the joined message, for both parties; one cut short, or with
// a header or key that does not parse, is refused and queues nothing.
func TestPrepParts(t *testing.T) {
	w := randomWeights(smallCfg, 2, false)
	sw := &StageWeights{Config: smallCfg, First: 0, Last: 1, Layers: []LayerWeights{*w.layer()}}
	ps, err := PrepareStage(sw, Params{})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := NewStageDealer(smallCfg, 0, 1, Params{}, 0, mpctest.NewRand(3))
	ma, mb, err := d.Next(2)
	if err != nil {
		t.Fatal(err)
	}
	cut := func(b []byte, n int) [][]byte {
		var parts [][]byte
		for len(b) > n {
			parts = append(parts, b[:n], nil)
			b = b[n:]
		}
		return append(parts, b)
	}
	for i, msg := range [][]byte{ma, mb} {
		role := Role(i)
		joined, _ := NewStageParty(role, ps, Options{})
		if err := joined.Prep(msg); err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{1, 3, 19, 20, 21, 37, 1000, len(msg) - 1} {
			p, _ := NewStageParty(role, ps, Options{})
			if err := p.PrepParts(cut(msg, n)); err != nil {
				t.Fatalf("%s, pieces of %d: %v", role, n, err)
			}
			if !reflect.DeepEqual(p.preps, joined.preps) {
				t.Fatalf("%s, pieces of %d: queued PREP differs", role, n)
			}
			for _, bad := range [][]byte{msg[:len(msg)-1], msg[:stepHeader-1], append([]byte{9}, msg[1:]...)} {
				q, _ := NewStageParty(role, ps, Options{})
				if err := q.PrepParts(cut(bad, n)); err == nil || q.QueuedPreps() != 0 {
					t.Fatalf("%s, pieces of %d: a bad PREP of %d bytes was taken", role, n, len(bad))
				}
			}
		}
	}
}
