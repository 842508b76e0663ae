package hop

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"testing"

	"github.com/unfed/unfed/compute/tensor"
)

func sampleEdges() []EdgeMsg {
	return []EdgeMsg{
		&Activations{Start: 5, N: 2, Dim: 3, DType: F32, Final: true, Data: []float32{1, -2, 3.25, 0, 1e-8, -7}},
		&Activations{Start: 0, N: 1, Dim: 4, DType: F16, Data: []float32{1, -2, 0.5, 65504}},
		&MPCPeer{Body: []byte{4, 5}},
		&MPCPrep{More: true, Body: []byte{4, 4, 0, 0, 1}},
		&MPCPrep{Body: []byte{9}},
		&MPCReshare{Final: true, Body: []byte{4, 6, 1, 16, 2, 3}},
		&MPCReshare{Body: []byte{4}},
	}
}

func TestEdgeRoundTrip(t *testing.T) {
	for _, m := range sampleEdges() {
		b := m.Append(nil)
		got, err := DecodeEdge(b)
		if err != nil {
			t.Fatalf("%v: %v", m.EdgeType(), err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("%v: got %+v want %+v", m.EdgeType(), got, m)
		}
	}
}

func TestActivationsF16Rounds(t *testing.T) {
	m := &Activations{N: 1, Dim: 3, DType: F16, Data: []float32{0.1, 1.0 / 3, -1234.567}}
	b := m.Append(nil)
	if len(b) != activationsHeader+6 {
		t.Fatalf("f16 body is %d bytes", len(b)-activationsHeader)
	}
	got, err := DecodeEdge(b)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range got.(*Activations).Data {
		want := tensor.F16ToF32(tensor.F32ToF16(m.Data[i]))
		if v != want || math.Abs(float64(v-m.Data[i])) > 1e-3*math.Abs(float64(m.Data[i]))+1e-4 {
			t.Fatalf("element %d: %v from %v", i, v, m.Data[i])
		}
	}
}

func TestDecodeEdgeRejects(t *testing.T) {
	act := (&Activations{N: 1, Dim: 2, Data: []float32{1, 2}}).Append(nil)
	cases := map[string][]byte{
		"empty":        nil,
		"unknown":      {0x7f},
		"act short":    act[:10],
		"act cut":      act[:len(act)-1],
		"act long":     append(append([]byte(nil), act...), 0),
		"act zero n":   (&Activations{N: 0, Dim: 2}).Append(nil),
		"act zero dim": (&Activations{N: 2, Dim: 0}).Append(nil),
		"act dtype": func() []byte {
			b := append([]byte(nil), act...)
			b[13] = 7
			return b
		}(),
		"act huge": func() []byte {
			b := append([]byte(nil), act...)
			b[5], b[9] = 0xff, 0xff // n and dim claim far more than is there
			return b
		}(),
		"peer empty":    {byte(EdgeMPCPeer)},
		"prep empty":    {byte(EdgeMPCPrep), flagMore},
		"prep no flags": {byte(EdgeMPCPrep)},
		"reshare empty": {byte(EdgeMPCReshare), flagFinal},
		"share (gone)":  {0x02, 0, 0, 0, 0, 0, 0, 0, 1, 1, 9},
	}
	for name, b := range cases {
		if _, err := DecodeEdge(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

func TestRowsPerMessage(t *testing.T) {
	for _, dim := range []int{1, 64, 896, 1 << 16} {
		for _, d := range []DType{F32, F16} {
			n := RowsPerMessage(dim, d)
			if n < 1 {
				t.Fatalf("dim %d %v: %d rows", dim, d, n)
			}
			full := activationsHeader + n*dim*d.Size()
			if full > MaxEdgePlain || full+dim*d.Size() <= MaxEdgePlain {
				t.Fatalf("dim %d %v: %d rows is not the most that fits", dim, d, n)
			}
		}
	}
}

func TestEdgeSealOpen(t *testing.T) {
	s := secret(9)
	seal, err := NewSealer(s, ChanData)
	if err != nil {
		t.Fatal(err)
	}
	open, _ := NewOpener(s, ChanData)
	var envs [][]byte
	for i := range 3 {
		env, err := seal.Seal(nil, []byte{byte(i), 1, 2, 3})
		if err != nil {
			t.Fatal(err)
		}
		if len(env) != 4+EnvelopeOverhead {
			t.Fatalf("envelope is %d bytes", len(env))
		}
		if ch, err := EnvelopeChannel(env); err != nil || ch != ChanData {
			t.Fatalf("channel %v %v", ch, err)
		}
		envs = append(envs, env)
	}
	if bytes.Equal(envs[0][1:], envs[1][1:]) {
		t.Fatal("two envelopes share a nonce")
	}
	for i, env := range envs {
		pt, err := open.Open(append([]byte(nil), env...))
		if err != nil || !bytes.Equal(pt, []byte{byte(i), 1, 2, 3}) {
			t.Fatalf("open %d: %x %v", i, pt, err)
		}
	}
	// Replay of an earlier envelope fails, and the stream stays broken.
	if _, err := open.Open(append([]byte(nil), envs[2]...)); !errors.Is(err, ErrEdgeAuth) {
		t.Fatalf("replay: %v", err)
	}
	next, _ := seal.Seal(nil, []byte{3})
	if _, err := open.Open(next); !errors.Is(err, ErrEdgeAuth) {
		t.Fatalf("after failure: %v", err)
	}
}

func TestEdgeRejectsReorderWrongKeyWrongChannel(t *testing.T) {
	s := secret(9)
	seal, _ := NewSealer(s, ChanData)
	a, _ := seal.Seal(nil, []byte("first"))
	b, _ := seal.Seal(nil, []byte("second"))

	reorder, _ := NewOpener(s, ChanData)
	if _, err := reorder.Open(b); !errors.Is(err, ErrEdgeAuth) {
		t.Fatalf("reordered: %v", err)
	}
	wrongKey, _ := NewOpener(secret(10), ChanData)
	if _, err := wrongKey.Open(append([]byte(nil), a...)); !errors.Is(err, ErrEdgeAuth) {
		t.Fatalf("wrong key: %v", err)
	}
	// The same secret under another channel is another key.
	other, _ := NewOpener(s, ChanDataB)
	relabelled := append([]byte(nil), a...)
	relabelled[0] = byte(ChanDataB)
	if _, err := other.Open(relabelled); !errors.Is(err, ErrEdgeAuth) {
		t.Fatalf("relabelled: %v", err)
	}
	tampered, _ := NewOpener(s, ChanData)
	flip := append([]byte(nil), a...)
	flip[3] ^= 1
	if _, err := tampered.Open(flip); !errors.Is(err, ErrEdgeAuth) {
		t.Fatalf("tampered: %v", err)
	}
	for _, short := range [][]byte{nil, {0}, make([]byte, EnvelopeOverhead-1)} {
		o, _ := NewOpener(s, ChanData)
		if _, err := o.Open(short); !errors.Is(err, ErrEdgeAuth) {
			t.Fatalf("short %d: %v", len(short), err)
		}
	}
	if _, err := NewSealer(s, ChannelDeal); err != nil {
		t.Fatalf("channel 4 (deal): %v", err)
	}
	if _, err := NewSealer(s, ChannelDeal+1); err == nil {
		t.Fatal("channel 5 accepted")
	}
	if _, err := EnvelopeChannel([]byte{5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}); err == nil {
		t.Fatal("envelope on channel 5 accepted")
	}
	if _, err := seal.Seal(nil, make([]byte, MaxEdgePlain+1)); err == nil {
		t.Fatal("oversized edge message sealed")
	}
}

// TestDecodeEdgeAlias: the session's decode keeps an MPC body in the opened
// message only when the body is most of it; a small body in a large buffer
// is copied, so a peer cannot make a party hold a large cell per few bytes
// it counts.
func TestDecodeEdgeAlias(t *testing.T) {
	big := make([]byte, 3, 1<<16)
	big[0], big[1], big[2] = byte(EdgeMPCPeer), 7, 8
	m, err := decodeEdge(big, false)
	if err != nil {
		t.Fatal(err)
	}
	if p := m.(*MPCPeer).Body; cap(p) >= 1<<15 || string(p) != "\x07\x08" {
		t.Fatalf("small body kept its %d-byte buffer: %q", cap(p), p)
	}
	full := make([]byte, 1<<16)
	full[0] = byte(EdgeMPCPrep)
	m, err = decodeEdge(full, false)
	if err != nil {
		t.Fatal(err)
	}
	if p := m.(*MPCPrep).Body; &p[0] != &full[2] {
		t.Fatal("a PREP fragment that fills its message was copied")
	}
	if m, err = DecodeEdge(full); err != nil || &m.(*MPCPrep).Body[0] == &full[2] {
		t.Fatalf("DecodeEdge aliased its input (%v)", err)
	}
}
