package hop

import (
	"github.com/unfed/unfed/relay/verify"
)

// Commitments of a compute session (spec/11-verification.md §2), run from
// hooks in session.go:
//
//	COMMIT_ON → commitOn: bind the session (model, range, kinds, nonce, identity)
//	TOKENS / HIDDEN / ACTIVATIONS → commitIn: hash the step's input as it arrives
//	emit → commitOut: hash the step's output; on FINAL sign and send COMMIT
//	       before the output leaves, and keep the rows for REVEAL
//	TRUNCATE → commitTruncate: rewind the input and output chains
//	REVEAL → reveal: send kept output rows back (REVEALED)
//
// All of it runs on the session's Deliver goroutine.

// commitState is one compute session's commitment state.
type commitState struct {
	chain   *verify.Chain
	in, out *verify.Hasher
	start   int // the step being received: its first position
	count   int // and its positions so far (0: no step open)
	keep    bool
	kept    []byte // output rows sent so far, in the out kind (not the last shard)
	row     int    // bytes per kept row
	steps   int    // steps committed, for the fault hook
}

// corrupt is the fault-injection hook (spec/11 §6): when set, it may
// change a compute session's output of a step before it is hashed and
// sent. It is nil in every production build; cheat.go (build tag
// unfedcheat) and this package's tests set it.
var corrupt func(cfg *Config, out []float32, step int)

// skipLayers is the other fault hook: when it returns true for a message,
// a compute hop with activation input that is not the last passes its
// input on as its output, skipping its layers. Set like corrupt.
var skipLayers func(cfg *Config) bool

func (ss *session) commitOn(m *CommitOn) error {
	id := ss.svc.cfg.Identity
	switch {
	case id == nil:
		return coded(CodeUnsupported, "this relay does not commit")
	case ss.party != nil:
		return ss.party.commitOn(m) // spec/11 §7, partycommit.go
	case ss.dealer != nil:
		return ss.dealer.commitOn(m)
	case ss.ms == nil:
		return coded(CodeBadMessage, "COMMIT_ON to a %v", ss.setup.Role)
	case ss.cm != nil || ss.ms.Len() != 0:
		return coded(CodeBadMessage, "COMMIT_ON after the session started")
	}
	b := verify.Binding{ModelID: ss.setup.ModelID, First: ss.setup.First, Last: ss.setup.Last, Nonce: m.Nonce}
	copy(b.Identity[:], id.Public)
	b.InKind = verify.KindF32 // activations: whichever dtype arrives, set per message
	if ss.setup.Input == InputTokens {
		b.InKind = verify.KindTokens
	}
	cm := &commitState{keep: !ss.svc.cfg.Shard.IsLast(), kept: ss.keptBuf}
	ss.keptBuf = nil
	switch {
	case !cm.keep && ss.setup.HiddenOut:
		b.OutKind = verify.KindFinal
	case !cm.keep:
		b.OutKind = verify.KindLogits
	case ss.setup.DType == F16:
		b.OutKind, cm.row = verify.KindF16, ss.dim*2
	default:
		b.OutKind, cm.row = verify.KindF32, ss.dim*4
	}
	cm.chain = verify.NewChain(b)
	cm.out = verify.NewHasher(b.OutKind)
	if b.InKind == verify.KindTokens {
		cm.in = verify.NewHasher(verify.KindTokens)
	}
	ss.cm = cm
	return nil
}

// commitIn hashes one input message of a step: ids for token input, rows
// (in the sender's dtype dt) for activations.
func (ss *session) commitIn(start, n int, ids []int, rows []float32, dt DType) error {
	cm := ss.cm
	if cm == nil {
		return nil
	}
	if ids == nil {
		k := verify.KindF32
		if dt == F16 {
			k = verify.KindF16
		}
		if cm.in == nil {
			cm.in, cm.chain.InKind = verify.NewHasher(k), k
		} else if k != cm.chain.InKind {
			return coded(CodeBadMessage, "ACTIVATIONS of a committed session changed dtype")
		}
	}
	if cm.count == 0 {
		cm.start = start
	}
	cm.count += n
	if ids != nil {
		cm.in.Tokens(ids)
	} else {
		cm.in.Floats(rows)
	}
	return nil
}

// commitOut runs the fault hook, hashes the output, and at the end of a
// step signs its commitment and sends COMMIT to the client.
func (ss *session) commitOut(out []float32, final bool) error {
	cm := ss.cm
	if corrupt != nil && final {
		step := 0
		if cm != nil {
			step = cm.steps
		}
		corrupt(&ss.svc.cfg, out, step)
	}
	if cm == nil {
		return nil
	}
	if cm.keep {
		cm.out.Floats(out)
		cm.kept = verify.AppendFloats(cm.kept, cm.chain.OutKind, out)
	} else if final {
		cm.out.Floats(out) // the last shard: the step's logits or final hidden row only
	}
	if !final {
		return nil
	}
	st := &verify.Step{Start: cm.start, Count: cm.count, In: cm.in.Sum(), Out: cm.out.Sum()}
	cm.count = 0
	c, ok := cm.chain.Commitment(st)
	if !ok {
		return coded(CodeBadMessage, "committed step at %d, chain at %d", st.Start, cm.chain.Next())
	}
	id := ss.svc.cfg.Identity
	if err := c.Sign(id, id.Public); err != nil {
		return coded(CodeInternal, "commitment")
	}
	cm.steps++
	st.Sig = c.Sig
	return ss.send(&Commit{Step: *st})
}

// commitTruncate rewinds the commitments with a TRUNCATE to pos. A
// position inside a step ends the session's commitments: the client must
// not truncate there (spec/11 §2.5).
func (ss *session) commitTruncate(pos int) error {
	cm := ss.cm
	if cm == nil {
		return nil
	}
	if cm.count != 0 || !cm.chain.Truncate(pos) {
		return coded(CodeBadMessage, "TRUNCATE to %d inside a committed step", pos)
	}
	if cm.keep {
		cm.kept = cm.kept[:pos*cm.row]
	}
	return nil
}

// reveal answers REVEAL with the kept output rows, in REVEALED messages of
// at most RowsPerMessage rows, FINAL on the last.
func (ss *session) reveal(m *Reveal) error {
	cm := ss.cm
	switch {
	case cm == nil || !cm.keep:
		return coded(CodeBadMessage, "REVEAL to a hop that keeps no outputs")
	case m.Start+m.Count > len(cm.kept)/cm.row:
		return coded(CodeBadMessage, "REVEAL of [%d,+%d), %d rows kept", m.Start, m.Count, len(cm.kept)/cm.row)
	}
	dt := ss.setup.DType
	rows := RowsPerMessage(ss.dim, dt)
	for i := 0; i < m.Count; i += rows {
		k := min(rows, m.Count-i)
		lo := (m.Start + i) * cm.row
		r := &Revealed{Activations{Start: m.Start + i, N: k, Dim: ss.dim, DType: dt, Final: i+k == m.Count,
			Data: verify.DecodeFloats(cm.chain.OutKind, cm.kept[lo:lo+k*cm.row])}}
		if err := ss.send(r); err != nil {
			return err
		}
	}
	return nil
}
