package mpc

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"testing"

	"github.com/unfed/unfed/compute/mpc/dpf"
	"github.com/unfed/unfed/compute/mpc/mpctest"
)

// TestStepAborts checks that mismatched or malformed messages abort the
// step with a typed error and leave the session usable.
func TestStepAborts(t *testing.T) {
	w := randomWeights(smallCfg, 3, false)
	ref, err := ReferenceBlock0(w, []int{4, 9})
	if err != nil {
		t.Fatal(err)
	}
	s := newSession(t, w, 1, Options{})
	s.step(t, 4)
	// A STEP before its PREP is refused, and changes nothing.
	pa, pb, err := s.d.Prep()
	if err != nil {
		t.Fatal(err)
	}
	ma, mb, err := s.d.Token(9)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.pa.Step(context.Background(), ma, s.ea); !errors.Is(err, ErrMismatch) {
		t.Fatalf("STEP without PREP: %v, want ErrMismatch", err)
	}
	// Malformed or mismatched PREPs are refused and leave no PREP behind.
	for _, c := range []struct {
		name string
		p    *Party
		msg  []byte
		want error
	}{
		{"prep for the other role", s.pa, pb, ErrMismatch},
		{"prep truncated", s.pa, pa[:len(pa)-5], ErrMalformed},
		{"prep as a step", s.pa, ma, ErrMalformed},
		{"prep version", s.pa, append([]byte{Version + 1}, pa[1:]...), ErrVersion},
		{"prep of version 8 (the residual's truncation and its norm in two rounds)", s.pa, append([]byte{8}, pa[1:]...), ErrVersion},
		{"prep of version 9 (RoPE after the products)", s.pa, append([]byte{9}, pa[1:]...), ErrVersion},
		{"prep of version 10 (p − g' opened after p's truncation)", s.pa, append([]byte{10}, pa[1:]...), ErrVersion},
		{"prep of version 11 (RoPE in the weights)", s.pa, append([]byte{11}, pa[1:]...), ErrVersion},
		{"prep of version 7 (two point keys per interpolated element)", s.pa, append([]byte{7}, pa[1:]...), ErrVersion},
		{"prep with a key too many", s.pa, withExtraKey(t, pa), ErrMalformed},
	} {
		if err := c.p.Prep(c.msg, true); !errors.Is(err, c.want) {
			t.Fatalf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	if _, err := s.pa.Step(context.Background(), ma, s.ea); !errors.Is(err, ErrMismatch) {
		t.Fatalf("STEP after refused PREPs: %v, want ErrMismatch", err)
	}
	if err := s.pa.Prep(pa, true); err != nil {
		t.Fatal(err)
	}
	if err := s.pb.Prep(pb, true); err != nil {
		t.Fatal(err)
	}
	if err := s.pa.Prep(pa, true); !errors.Is(err, ErrMismatch) {
		t.Fatalf("second PREP for one step: %v, want ErrMismatch", err)
	}
	bad := func(name string, a, b []byte, want error) {
		t.Helper()
		_, _, ea, eb := s.run(a, b)
		if !errors.Is(ea, want) && !errors.Is(eb, want) {
			t.Fatalf("%s: got A=%v B=%v, want %v", name, ea, eb, want)
		}
		if s.pa.Pos() != 1 || s.pb.Pos() != 1 {
			t.Fatalf("%s: state changed", name)
		}
	}
	swap := append([]byte(nil), ma...)
	binary.BigEndian.PutUint32(swap[16:], 5) // wrong position
	bad("position", swap, mb, ErrMismatch)
	bad("roles swapped", mb, ma, ErrMismatch)
	v := append([]byte(nil), ma...)
	v[0] = Version + 1
	bad("version", v, mb, ErrVersion)
	bad("truncated", ma[:len(ma)-3], mb[:len(mb)-3], ErrMalformed)
	bad("prep in place of the step", pa, pb, ErrMalformed)
	// a fresh pipe: the aborted rounds above may have left messages queued
	s.ea, s.eb = nil, nil
	s2 := newSession(t, w, 1, Options{})
	s2.step(t, 4)
	got := s2.step(t, 9)
	if d := maxAbsDiff(got, ref[smallCfg.Dim:]); d > 0.03 {
		t.Fatalf("after aborts: error %g", d)
	}
	// Reconstruct refuses mismatched shares.
	if _, err := Reconstruct(encodeOutput(RoleA, 1, 1, []uint64{1}), encodeOutput(RoleA, 1, 1, []uint64{1})); !errors.Is(err, ErrMismatch) {
		t.Fatalf("same-role shares: %v", err)
	}
	if _, err := Reconstruct(encodeOutput(RoleA, 1, 1, []uint64{1}), encodeOutput(RoleB, 2, 1, []uint64{1})); !errors.Is(err, ErrMismatch) {
		t.Fatalf("step mismatch: %v", err)
	}
}

// TestNoise checks that the optional noise changes the output by about sigma.
func TestNoise(t *testing.T) {
	w := randomWeights(smallCfg, 3, false)
	ref, _ := ReferenceBlock0(w, []int{7})
	s := newSession(t, w, 2, Options{NoiseSigma: 0.5})
	got := s.step(t, 7)
	var ss float64
	for i := range got {
		d := float64(got[i] - ref[i])
		ss += d * d
	}
	rms := math.Sqrt(ss / float64(len(got)))
	// two parties each add sigma=0.5: total sigma 0.707; 32 samples
	if rms < 0.3 || rms > 1.3 {
		t.Fatalf("noise rms %g, want about 0.7", rms)
	}
}

// withExtraKey returns a copy of PREP message m (party A's) with one more
// well-formed LUT key at the end of its key section.
func withExtraKey(t *testing.T, m []byte) []byte {
	t.Helper()
	k, _, err := dpf.Gen(1, 1, 9, mpctest.NewRand(5))
	if err != nil {
		t.Fatal(err)
	}
	extra, _ := k.MarshalBinary()
	out := append(append([]byte(nil), m...), extra...)
	n := len(out) - stepHeader - 16 - 4 // A: header, seed, keys length
	binary.BigEndian.PutUint32(out[stepHeader+16:], uint32(n))
	return out
}

// TestPrepSizes: the sizes a party expects of a PREP (prepSize) are those
// the dealer produces, at every position, for two shapes.
func TestPrepSizes(t *testing.T) {
	for _, c := range []Config{smallCfg, {Dim: 16, NHeads: 4, NKVHeads: 1, HeadDim: 4, FFN: 40, Vocab: 300, NormEps: 1e-6, RopeTheta: 1e6}} {
		par := Params{}.withDefaults()
		ps := newPrepSize(c, par)
		d, err := NewDealer(c, par, mpctest.NewRand(2))
		if err != nil {
			t.Fatal(err)
		}
		for pos := 0; pos < 6; pos++ {
			pa, pb, err := d.Prep()
			if err != nil {
				t.Fatal(err)
			}
			ma, err := decodeStepMsg(pa, kindPrep)
			if err != nil {
				t.Fatal(err)
			}
			mb, err := decodeStepMsg(pb, kindPrep)
			if err != nil {
				t.Fatal(err)
			}
			shares, keys := ps.at(pos)
			if len(mb.shares) != shares || len(mb.keys) != keys || len(ma.keys) != keys {
				t.Fatalf("dim %d position %d: dealer %d/%d/%d bytes, expected %d/%d", c.Dim, pos, len(mb.shares), len(ma.keys), len(mb.keys), shares, keys)
			}
			if _, _, err := d.Token(pos % c.Vocab); err != nil {
				t.Fatal(err)
			}
		}
	}
}
