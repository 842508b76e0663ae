package hop

import (
	crand "crypto/rand"
	"encoding/binary"
	"math/rand/v2"
	"sync"

	"github.com/unfed/unfed/compute/mpc"
	"github.com/unfed/unfed/relay/cell"
)

// Reveals of a confidential session (spec/11 §7.5): with commitments on,
// a dealer can deal its PREPs again and a party keeps what it sent and
// received, so that at the session's end the client gathers one party's
// view from the relays around it, never from the party itself:
//
//	PARTY_REVEAL → dealer: the PREPs it sent to A or to B, or the cache
//	               mask rows it dealt A or B, dealt again from the
//	               session's seed;
//	             → party: the openings it sent the other party, the
//	               RESHARE pieces it sent or received, by channel, the
//	               opened cache rows it appended (the other party's too)
//	PARTY_REVEALED ← the answer, a stream cut into fragments, FINAL on the
//	               last: per step, count u32 ‖ count × (len u32 ‖ body)
//
// A reveal is of the steps [from, from+steps): a party ticket needs the
// views of its window and the state rows of the steps before it; a reveal
// of no step (steps 0) is a cover, answered by one empty PARTY_REVEALED.
//
// A party keeps at most maxKept bytes per session; past that it answers
// reveals with bad-message (the client then audits nobody next to it).

// Message types (spec/11 §7.5).
const (
	// TypePartyReveal asks a dealer or party for what it kept.
	TypePartyReveal MsgType = 0x0e
	// TypePartyRevealed carries a fragment of the answer.
	TypePartyRevealed MsgType = 0x8b
)

// RevealWhat is what a PARTY_REVEAL asks for.
type RevealWhat uint8

// What a PARTY_REVEAL asks for.
const (
	RevealPrepA    RevealWhat = 1 // dealer: the PREPs sent to party A
	RevealPrepB    RevealWhat = 2 // dealer: the PREPs sent to party B
	RevealPeerSent RevealWhat = 3 // party: the MPC_PEER bodies it sent
	RevealSent0    RevealWhat = 4 // party before the last stage: the RESHARE piece sent on channel 0
	RevealSent1    RevealWhat = 5 // … on channel 1
	RevealRecv0    RevealWhat = 6 // party after the first stage: the RESHARE piece received on channel 0
	RevealRecv1    RevealWhat = 7 // … on channel 1
	RevealOpened   RevealWhat = 8 // party: the STATE of the opened cache rows it appended (the same at both parties)
	RevealMasksA   RevealWhat = 9 // dealer: the STATE of the cache mask rows dealt to party A
	RevealMasksB   RevealWhat = 10
)

// PartyReveal asks for what a dealer or party sent or received in steps
// [From, From+Steps): what u8 ‖ from u32 ‖ steps u32. Steps 0 is a cover
// (spec/11 §7.5): nothing to reveal, nothing dealt again.
type PartyReveal struct {
	What  RevealWhat
	From  int
	Steps int
}

// Type implements Msg.
func (*PartyReveal) Type() MsgType { return TypePartyReveal }

// Append implements Msg.
func (m *PartyReveal) Append(dst []byte) []byte {
	dst = append(dst, byte(TypePartyReveal), byte(m.What))
	dst = binary.BigEndian.AppendUint32(dst, uint32(m.From))
	return binary.BigEndian.AppendUint32(dst, uint32(m.Steps))
}

// PartyRevealed is one fragment of a reveal's answer: flags u8 (bit 0
// FINAL) ‖ data.
type PartyRevealed struct {
	Final bool
	Data  []byte
}

// Type implements Msg.
func (*PartyRevealed) Type() MsgType { return TypePartyRevealed }

// Append implements Msg.
func (m *PartyRevealed) Append(dst []byte) []byte {
	return append(append(dst, byte(TypePartyRevealed), finalFlag(m.Final)), m.Data...)
}

// maxRevealFragment is the data of one PARTY_REVEALED.
const maxRevealFragment = cell.MaxMessage - 2

func decodePartyRevealMsg(t MsgType, b []byte) (Msg, error) {
	switch t {
	case TypePartyReveal:
		if len(b) != 10 {
			return nil, malformed(t, "%d bytes", len(b))
		}
		m := &PartyReveal{What: RevealWhat(b[1]), From: int(binary.BigEndian.Uint32(b[2:])), Steps: int(binary.BigEndian.Uint32(b[6:]))}
		if m.What < RevealPrepA || m.What > RevealMasksB || m.From > MaxContextField || m.Steps > MaxContextField-m.From {
			return nil, malformed(t, "what %d, %d steps from %d", m.What, m.Steps, m.From)
		}
		return m, nil
	case TypePartyRevealed:
		if len(b) < 2 || b[1]&^flagFinal != 0 {
			return nil, malformed(t, "header")
		}
		return &PartyRevealed{Final: b[1]&flagFinal != 0, Data: append([]byte(nil), b[2:]...)}, nil
	}
	return nil, nil
}

// maxKept bounds what a party keeps per session for reveals.
const maxKept = 64 << 20

// kept is what a committed party keeps for reveals: written by the worker
// before each step's PARTY_COMMIT leaves, read by Deliver on a reveal.
type kept struct {
	mu       sync.Mutex
	peerSent [][][]byte // per step
	sent     [][2][]byte
	recvd    [][2][]byte
	opened   [][]byte // the opened cache rows appended (mpc STATE)
	bytes    int
	full     bool // more than maxKept: nothing is revealed
}

// step records one step; peer is the step's openings sent, sent and recvd
// its pieces (nil where the stage has none), opened the STATE of the opened
// cache rows it appended.
func (k *kept) step(peer [][]byte, sent, recvd [2][]byte, opened []byte) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.full {
		return
	}
	for _, b := range peer {
		k.bytes += len(b) + 4
	}
	k.bytes += len(sent[0]) + len(sent[1]) + len(recvd[0]) + len(recvd[1]) + len(opened)
	if k.bytes > maxKept {
		k.full, k.peerSent, k.sent, k.recvd, k.opened = true, nil, nil, nil, nil
		return
	}
	k.peerSent = append(k.peerSent, peer)
	k.sent = append(k.sent, sent)
	k.recvd = append(k.recvd, recvd)
	k.opened = append(k.opened, opened)
}

// revealWriter streams a reveal's answer in PARTY_REVEALED fragments.
type revealWriter struct {
	ss  *session
	buf []byte
}

func (w *revealWriter) step(bodies ...[]byte) error {
	w.buf = binary.BigEndian.AppendUint32(w.buf, uint32(len(bodies)))
	for _, b := range bodies {
		w.buf = binary.BigEndian.AppendUint32(w.buf, uint32(len(b)))
		w.buf = append(w.buf, b...)
	}
	for len(w.buf) > maxRevealFragment {
		if err := w.ss.send(&PartyRevealed{Data: w.buf[:maxRevealFragment]}); err != nil {
			return err
		}
		w.buf = append(w.buf[:0], w.buf[maxRevealFragment:]...)
	}
	return nil
}

func (w *revealWriter) close() error { return w.ss.send(&PartyRevealed{Final: true, Data: w.buf}) }

// partyReveal answers a PARTY_REVEAL (Deliver goroutine).
func (ss *session) partyReveal(m *PartyReveal) error {
	switch {
	case ss.dealer != nil:
		return ss.dealer.reveal(m)
	case ss.party != nil:
		return ss.party.reveal(m)
	}
	return coded(CodeBadMessage, "PARTY_REVEAL to a %v", ss.setup.Role)
}

func (pr *partyRun) reveal(m *PartyReveal) error {
	cm := pr.commitment()
	if cm == nil {
		return coded(CodeBadMessage, "PARTY_REVEAL without commitments")
	}
	k := &cm.kept
	k.mu.Lock()
	defer k.mu.Unlock()
	switch {
	case k.full:
		return coded(CodeBadMessage, "more than %d bytes to keep: nothing kept", maxKept)
	case m.From+m.Steps > len(k.sent):
		return coded(CodeBadMessage, "PARTY_REVEAL of steps [%d,+%d), %d kept", m.From, m.Steps, len(k.sent))
	case m.What < RevealPeerSent || m.What > RevealOpened,
		(m.What == RevealSent0 || m.What == RevealSent1) && pr.last,
		(m.What == RevealRecv0 || m.What == RevealRecv1) && pr.first:
		return coded(CodeBadMessage, "PARTY_REVEAL of %d from this party", m.What)
	}
	w := &revealWriter{ss: pr.ss}
	for i := m.From; i < m.From+m.Steps; i++ {
		var err error
		switch m.What {
		case RevealPeerSent:
			err = w.step(k.peerSent[i]...)
		case RevealSent0, RevealSent1:
			err = w.step(k.sent[i][m.What-RevealSent0])
		case RevealOpened:
			err = w.step(k.opened[i])
		default:
			err = w.step(k.recvd[i][m.What-RevealRecv0])
		}
		if err != nil {
			return err
		}
	}
	return w.close()
}

// newDealRand returns the randomness of a committed dealer session: a
// ChaCha8 stream (a CSPRNG) from a fresh seed, so that reveal can deal the
// same PREPs again.
func newDealRand() ([32]byte, *rand.ChaCha8) {
	var seed [32]byte
	// Since Go 1.24 crypto/rand.Read returns no error: it ends the
	// program itself if the system's source fails.
	crand.Read(seed[:])
	return seed, rand.NewChaCha8(seed)
}

func (dr *dealerRun) reveal(m *PartyReveal) error {
	switch {
	case dr.cm == nil:
		return coded(CodeBadMessage, "PARTY_REVEAL without commitments")
	case m.What != RevealPrepA && m.What != RevealPrepB && m.What != RevealMasksA && m.What != RevealMasksB:
		return coded(CodeBadMessage, "PARTY_REVEAL of %d from a dealer", m.What)
	case m.From+m.Steps > len(dr.rows):
		return coded(CodeBadMessage, "PARTY_REVEAL of steps [%d,+%d), %d dealt", m.From, m.Steps, len(dr.rows))
	}
	i := map[RevealWhat]int{RevealPrepA: 0, RevealPrepB: 1, RevealMasksA: 2, RevealMasksB: 3}[m.What]
	w := &revealWriter{ss: dr.ss}
	for k := m.From; k < m.From+m.Steps; k++ {
		b, err := dr.redeal(k, i, m.From, m.From+m.Steps)
		if err != nil {
			return err
		}
		if err := w.step(b); err != nil {
			return err
		}
	}
	return w.close()
}

// maxRedealt bounds what a dealer keeps, per session, of what it dealt
// again for reveals (a variable for tests).
var maxRedealt = 32 << 20

// redealt is what a committed dealer dealt again for reveals: a client
// gathering a ticket asks its dealer the PREPs of the window [t0, t] and
// the mask rows of [0, t0), and each step's randomness follows the earlier
// steps', so a dealer dealing each reveal again from step 0 dealt [0, t0)
// twice. It keeps what it dealt again, up to maxRedealt bytes: the mask
// rows of every step, and the PREPs (to A and to B: a gathering may audit
// both parties) of the steps of the reveal that dealt them; and the dealer
// positioned after it, so that one gathering deals each step once.
type redealt struct {
	d     *mpc.StageDealer // dealing again from the seed: next steps dealt
	next  int
	got   [][4][]byte // per step: PREP to A, to B, mask rows of A, of B (nil: not kept)
	bytes int
}

// redeal returns what the dealer dealt at step k (i: 0 the PREP to A, 1 to
// B, 2 the mask rows of A, 3 of B), dealt again from the session's seed,
// from step 0 unless it was kept or the dealing again is at or before k,
// for a reveal of the steps [from, to).
// Nothing kept is written after: the dealer's bodies are fresh at every
// step (mpc.StageDealer.Next, StepMasks).
func (dr *dealerRun) redeal(k, i, from, to int) ([]byte, error) {
	r := dr.rd
	if r != nil && k < len(r.got) && r.got[k][i] != nil {
		return r.got[k][i], nil
	}
	if r == nil || k < r.next {
		ss := dr.ss
		d, err := mpc.NewStageDealer(ss.svc.dealerCfg, ss.setup.First, ss.setup.Last, ss.svc.cfg.Dealer.Params, dr.max,
			rand.NewChaCha8(dr.seed))
		if err != nil {
			return nil, coded(CodeInternal, "dealer setup failed")
		}
		if r == nil {
			r = &redealt{}
			dr.rd = r
		}
		r.d, r.next = d, 0
	}
	var out [4][]byte
	for ; r.next <= k; r.next++ {
		var err error
		if out[0], out[1], err = r.d.Next(dr.rows[r.next]); err != nil {
			return nil, coded(CodeInternal, "dealing failed")
		}
		for role := range 2 {
			if out[2+role], err = r.d.StepMasks(mpc.Role(role)); err != nil {
				return nil, coded(CodeInternal, "dealing failed")
			}
		}
		if r.next == len(r.got) {
			r.got = append(r.got, [4][]byte{})
		}
		for j, b := range out {
			if j < 2 && (r.next < from || r.next >= to) {
				continue // a PREP outside this reveal's steps
			}
			if r.got[r.next][j] == nil && r.bytes+len(b) <= maxRedealt {
				r.got[r.next][j] = b
				r.bytes += len(b)
			}
		}
	}
	return out[i], nil
}
