package mpc

import (
	"encoding/binary"
	"fmt"
	mrand "math/rand/v2"
)

// Output share layout (spec §5.4):
//
//	version u8, kind u8 = 3, role u8, scale u8 (fractional bits),
//	step u32, pos u32, dim u32, dim x u64 share
const outHeader = 16

func encodeOutput(role Role, step, pos uint32, vals []uint64) []byte {
	b := make([]byte, 0, outHeader+8*len(vals))
	b = append(b, Version, kindOutput, byte(role), OutScale)
	b = binary.BigEndian.AppendUint32(b, step)
	b = binary.BigEndian.AppendUint32(b, pos)
	b = binary.BigEndian.AppendUint32(b, uint32(len(vals)))
	for _, v := range vals {
		b = binary.BigEndian.AppendUint64(b, v)
	}
	return b
}

// OutputShare is a decoded output share.
type OutputShare struct {
	Role  Role
	Scale int
	Step  uint32
	Pos   uint32
	Vals  []uint64
}

// DecodeOutput parses a party's output share.
func DecodeOutput(b []byte) (*OutputShare, error) {
	if len(b) < outHeader {
		return nil, fmt.Errorf("%w: output share of %d bytes", ErrMalformed, len(b))
	}
	if b[0] != Version {
		return nil, fmt.Errorf("%w: %d", ErrVersion, b[0])
	}
	if b[1] != kindOutput || b[2] > 1 || b[3] == 0 || b[3] > 62 {
		return nil, fmt.Errorf("%w: output header", ErrMalformed)
	}
	n := binary.BigEndian.Uint32(b[12:])
	if n == 0 || n > MaxDim || len(b) != outHeader+8*int(n) {
		return nil, fmt.Errorf("%w: output share length", ErrMalformed)
	}
	s := &OutputShare{Role: Role(b[2]), Scale: int(b[3]), Step: binary.BigEndian.Uint32(b[4:]), Pos: binary.BigEndian.Uint32(b[8:]), Vals: make([]uint64, n)}
	for i := range s.Vals {
		s.Vals[i] = binary.BigEndian.Uint64(b[outHeader+8*i:])
	}
	return s, nil
}

// Reconstruct adds the output shares of A and B (in either order) and
// returns the residual stream after block 0 as float32 (what S1 does).
func Reconstruct(shareA, shareB []byte) ([]float32, error) {
	a, err := DecodeOutput(shareA)
	if err != nil {
		return nil, err
	}
	b, err := DecodeOutput(shareB)
	if err != nil {
		return nil, err
	}
	if a.Role == b.Role {
		return nil, fmt.Errorf("%w: both shares from party %s", ErrMismatch, a.Role)
	}
	if a.Step != b.Step || a.Pos != b.Pos || a.Scale != b.Scale || len(a.Vals) != len(b.Vals) {
		return nil, fmt.Errorf("%w: output shares disagree (step %d/%d, pos %d/%d)", ErrMismatch, a.Step, b.Step, a.Pos, b.Pos)
	}
	out := make([]float32, len(a.Vals))
	for i := range out {
		out[i] = float32(unfix(a.Vals[i]+b.Vals[i], uint(a.Scale)))
	}
	return out, nil
}

// addNoise adds N(0, sigma^2) to each element of a share at OutScale.
func addNoise(v []uint64, sigma float64, r *mrand.Rand) {
	for i := range v {
		v[i] += fix(r.NormFloat64()*sigma, OutScale)
	}
}
