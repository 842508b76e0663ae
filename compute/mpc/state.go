package mpc

// A stage party's state between steps is its KV caches: per layer and
// position, the opened masked key and value K_t = k_t − b_t, V_t = v_t − d_t
// (the same at both parties: they were opened) and the party's shares of
// the masks [b_t], [d_t] (its own, from its PREPs). A step appends the rows
// of its positions and nothing else. The rows a step appended are exported
// in two STATE messages, one per kind, so that a verifier can start a party
// at a later step without re-running the earlier ones (spec/11 §7.4):
//
//	version u8 (StageVersion) ‖ kind u8 (1 opened, 2 masks) ‖ role u8 (0 for
//	opened; the party's for masks) ‖ stage hash 8 ‖ step u32 ‖ pos u32 ‖
//	rows u32 (1..MaxStepRows) ‖ layers u16 (1..MaxStageLayers) ‖
//	kv dim u32 (1..MaxDim) ‖ layers × rows × (2 × kv dim) u64 big-endian
//
// opened: K_t ‖ V_t per row; masks: [b_t] ‖ [d_t] per row.

import (
	"encoding/binary"
	"fmt"
)

// StateKind is the kind of a STATE message.
type StateKind uint8

// STATE kinds.
const (
	StateOpened StateKind = 1 // K_t ‖ V_t: the opened cache values, the same at both parties
	StateMasks  StateKind = 2 // [b_t] ‖ [d_t]: one party's shares of the cache masks
)

func (k StateKind) String() string {
	switch k {
	case StateOpened:
		return "opened"
	case StateMasks:
		return "masks"
	}
	return fmt.Sprintf("state kind %d", uint8(k))
}

// StepState is a decoded STATE message: the cache rows one step appended.
type StepState struct {
	Kind      StateKind
	Role      Role // RoleA for StateOpened
	Hash      [8]byte
	Step, Pos uint32
	Rows      int
	Layers    int
	KVDim     int
	Vals      []uint64 // Layers × Rows × 2·KVDim
}

const stateHeader = 1 + 1 + 1 + 8 + 4 + 4 + 4 + 2 + 4

// EncodeState encodes s.
func EncodeState(s *StepState) []byte {
	b := make([]byte, 0, stateHeader+8*len(s.Vals))
	b = append(b, StageVersion, byte(s.Kind), byte(s.Role))
	b = append(b, s.Hash[:]...)
	b = binary.BigEndian.AppendUint32(b, s.Step)
	b = binary.BigEndian.AppendUint32(b, s.Pos)
	b = binary.BigEndian.AppendUint32(b, uint32(s.Rows))
	b = binary.BigEndian.AppendUint16(b, uint16(s.Layers))
	b = binary.BigEndian.AppendUint32(b, uint32(s.KVDim))
	for _, v := range s.Vals {
		b = binary.BigEndian.AppendUint64(b, v)
	}
	return b
}

// DecodeState parses a STATE message. It allocates only in proportion to
// len(b): the size is checked against the header first.
func DecodeState(b []byte) (*StepState, error) {
	if len(b) < stateHeader {
		return nil, fmt.Errorf("%w: state of %d bytes", ErrMalformed, len(b))
	}
	if b[0] != StageVersion {
		return nil, fmt.Errorf("%w: %d", ErrVersion, b[0])
	}
	k, role := StateKind(b[1]), Role(b[2])
	if k != StateOpened && k != StateMasks || role > RoleB || k == StateOpened && role != RoleA {
		return nil, fmt.Errorf("%w: state header (kind %d, role %d)", ErrMalformed, b[1], b[2])
	}
	s := &StepState{Kind: k, Role: role, Step: binary.BigEndian.Uint32(b[11:]), Pos: binary.BigEndian.Uint32(b[15:])}
	copy(s.Hash[:], b[3:11])
	rows, layers, kvd := binary.BigEndian.Uint32(b[19:]), binary.BigEndian.Uint16(b[23:]), binary.BigEndian.Uint32(b[25:])
	if rows == 0 || rows > MaxStepRows || layers == 0 || layers > MaxStageLayers || kvd == 0 || kvd > MaxDim ||
		uint64(len(b)) != stateHeader+16*uint64(rows)*uint64(layers)*uint64(kvd) {
		return nil, fmt.Errorf("%w: state of %d layers x %d rows x %d in %d bytes", ErrMalformed, layers, rows, kvd, len(b))
	}
	if uint64(s.Pos)+uint64(rows) > MaxContext {
		return nil, fmt.Errorf("%w: state rows [%d,+%d) beyond %d positions", ErrMalformed, s.Pos, rows, MaxContext)
	}
	s.Rows, s.Layers, s.KVDim = int(rows), int(layers), int(kvd)
	s.Vals = make([]uint64, (len(b)-stateHeader)/8)
	for i := range s.Vals {
		s.Vals[i] = binary.BigEndian.Uint64(b[stateHeader+8*i:])
	}
	return s, nil
}

// StepState returns the STATE message of the given kind for the rows the
// party's last completed step appended to its caches: what it commits to
// (spec/11 §7.1) and what a verifier resumes it from (ResumeStageParty).
func (p *StageParty) StepState(kind StateKind) ([]byte, error) {
	if p.lastRows == 0 {
		return nil, fmt.Errorf("%w: no step completed", ErrMismatch)
	}
	if kind != StateOpened && kind != StateMasks {
		return nil, fmt.Errorf("mpc: %v", kind)
	}
	kvd := p.ps.cfg.kvDim()
	from, rows := p.pos-p.lastRows, p.lastRows
	s := &StepState{Kind: kind, Hash: p.ps.hash, Step: p.step - 1, Pos: uint32(from), Rows: rows,
		Layers: len(p.kv), KVDim: kvd, Vals: make([]uint64, 0, len(p.kv)*rows*2*kvd)}
	if kind == StateMasks {
		s.Role = p.role
	}
	for i := range p.kv {
		kv := &p.kv[i]
		x, y := kv.K, kv.V
		if kind == StateMasks {
			x, y = kv.B, kv.D
		}
		for j := from; j < from+rows; j++ {
			s.Vals = append(s.Vals, x[j*kvd:(j+1)*kvd]...)
			s.Vals = append(s.Vals, y[j*kvd:(j+1)*kvd]...)
		}
	}
	return EncodeState(s), nil
}

// ResumeStageParty starts a party of role on ps positioned after the steps
// whose appended cache rows are opened[i] and masks[i] (STATE messages of
// steps 0, 1, …, each starting where the previous ended): the party a
// session had after those steps, without re-running them. Its Stats are
// zero until its first step.
func ResumeStageParty(role Role, ps *PreparedStage, opt Options, opened, masks [][]byte) (*StageParty, error) {
	p, err := NewStageParty(role, ps, opt)
	if err != nil {
		return nil, err
	}
	if len(opened) != len(masks) {
		return nil, fmt.Errorf("%w: %d opened and %d mask states", ErrMismatch, len(opened), len(masks))
	}
	kvd := ps.cfg.kvDim()
	for i := range opened {
		var rows int
		for _, m := range []struct {
			b    []byte
			kind StateKind
			role Role
		}{{opened[i], StateOpened, RoleA}, {masks[i], StateMasks, role}} {
			s, err := DecodeState(m.b)
			if err != nil {
				return nil, fmt.Errorf("state of step %d: %w", i, err)
			}
			switch {
			case s.Kind != m.kind || s.Role != m.role:
				return nil, fmt.Errorf("%w: step %d: %v state of party %s, want %v of %s", ErrMismatch, i, s.Kind, s.Role, m.kind, m.role)
			case s.Hash != ps.hash:
				return nil, fmt.Errorf("%w: step %d: state of another stage", ErrMismatch, i)
			case s.Step != uint32(i) || int(s.Pos) != p.pos:
				return nil, fmt.Errorf("%w: state of step %d at %d, want step %d at %d", ErrMismatch, s.Step, s.Pos, i, p.pos)
			case s.Layers != len(p.kv) || s.KVDim != kvd:
				return nil, fmt.Errorf("%w: state of %d layers x %d, stage has %d x %d", ErrMismatch, s.Layers, s.KVDim, len(p.kv), kvd)
			case p.pos+s.Rows > p.opt.MaxContext:
				return nil, fmt.Errorf("%w: context full at %d positions", ErrMismatch, p.pos+s.Rows)
			case rows != 0 && s.Rows != rows:
				return nil, fmt.Errorf("%w: step %d: opened and mask states of %d and %d rows", ErrMismatch, i, rows, s.Rows)
			}
			rows = s.Rows
			for l := range p.kv {
				kv := &p.kv[l]
				v := s.Vals[l*rows*2*kvd : (l+1)*rows*2*kvd]
				for r := range rows {
					x, y := v[r*2*kvd:r*2*kvd+kvd], v[r*2*kvd+kvd:(r+1)*2*kvd]
					if s.Kind == StateOpened {
						kv.K, kv.V = append(kv.K, x...), append(kv.V, y...)
					} else {
						kv.B, kv.D = append(kv.B, x...), append(kv.D, y...)
					}
				}
			}
		}
		p.step++
		p.pos += rows
	}
	return p, nil
}
