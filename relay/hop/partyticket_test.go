package hop_test

import (
	"context"
	"encoding/binary"
	"sync"
	"testing"

	"github.com/unfed/unfed/compute/mpc"
	"github.com/unfed/unfed/relay/hop"
	"github.com/unfed/unfed/relay/verify"
)

// Party tickets (spec/11 §7.4) of the parties of the in-memory circuit
// D1 A1 B1 D2 A2 B2, built from what the hops captured and re-executed by
// verify.CheckParty: the hops' commitments (version 2, with the openings'
// hashes) bind exactly what the verifier re-executes.

// capLog keeps what every hop captured, by circuit position.
type capLog struct {
	mu   sync.Mutex
	recs map[int][]capRec
}

type capRec struct {
	dir hop.CaptureDir
	msg []byte
}

func (l *capLog) add(pos int, dir hop.CaptureDir, msg []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.recs == nil {
		l.recs = map[int][]capRec{}
	}
	l.recs[pos] = append(l.recs[pos], capRec{dir, append([]byte(nil), msg...)})
}

// edge returns the edge messages pos captured in dir, decoded.
func (l *capLog) edge(t *testing.T, pos int, dir hop.CaptureDir) []hop.EdgeMsg {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []hop.EdgeMsg
	for _, r := range l.recs[pos] {
		if r.dir != dir || (dir != hop.CaptureFromEdge && dir != hop.CaptureToEdge) {
			continue
		}
		m, err := hop.DecodeEdge(r.msg)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// view is one party's captured traffic, per step.
type view struct {
	preps  [][]byte
	peer   [][][]byte // openings received, by step
	pieces [][]byte   // RESHARE pieces sent, in order (same, other per step)
	inputs [][]byte   // MPC_INPUT bodies received (stage 1)
}

func (l *capLog) view(t *testing.T, pos int) *view {
	t.Helper()
	v := &view{}
	var partial []byte
	for _, m := range l.edge(t, pos, hop.CaptureFromEdge) {
		switch m := m.(type) {
		case *hop.MPCPrep:
			partial = append(partial, m.Body...)
			if !m.More {
				v.preps, partial = append(v.preps, partial), nil
			}
		case *hop.MPCPeer:
			if m.IsAbort() {
				continue
			}
			step := int(binary.BigEndian.Uint32(m.Body[4:]))
			for len(v.peer) <= step {
				v.peer = append(v.peer, nil)
			}
			v.peer[step] = append(v.peer[step], m.Body)
		}
	}
	for _, m := range l.edge(t, pos, hop.CaptureToEdge) {
		if m, ok := m.(*hop.MPCReshare); ok {
			v.pieces = append(v.pieces, m.Body)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.recs[pos] {
		if r.dir != hop.CaptureFromClient {
			continue
		}
		if m, err := hop.Decode(r.msg); err == nil {
			if in, ok := m.(*hop.MPCInput); ok {
				v.inputs = append(v.inputs, in.Body)
			}
		}
	}
	return v
}

// partyTicket builds the ticket of the party at circuit position pos (1,
// 2, 4 or 5) for the session's last step: its inputs as its senders sent
// them (the client's MPC_INPUT, or the previous stage's pieces by channel),
// its PREPs, the openings it received and, before the last stage, the
// pieces it sent; the records are its commitments as the client received
// them.
func partyTicket(t *testing.T, cc *committedConf, l *capLog, pos int) *verify.PartyTicket {
	t.Helper()
	v := l.view(t, pos)
	steps := len(cc.hist)
	pt := &verify.PartyTicket{}
	for k := range steps {
		rec := cc.hist[k][pos].PartyStep
		rec.Sig = [64]byte{}
		pv := verify.PartyView{Record: rec, Prep: v.preps[k], Peer: v.peer[k]}
		if pos < 3 {
			pv.In = [][]byte{v.inputs[k]}
			pv.Out = [][]byte{v.pieces[2*k], v.pieces[2*k+1]}
		} else {
			// Channel 0 from the same side of stage 1, channel 1 from the other.
			same, other := l.view(t, pos-3).pieces, l.view(t, 3-(pos-3)).pieces
			pv.In = [][]byte{same[2*k], other[2*k+1]}
		}
		pt.Steps = append(pt.Steps, pv)
	}
	pt.Commitment = cc.hist[steps-1][pos]
	return pt
}

// TestPartyTicketsFromHops: every party of an honest committed session
// re-executes to its commitments; a party that alters its output share
// after computing it (hop.SetMiscompute), which every crosswise check of
// the client lets through, is Fraud, and only it.
func TestPartyTicketsFromHops(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cheat int // circuit position of the cheater, 0 for none
	}{{"honest", 0}, {"A1 miscomputes", 1}, {"B2 miscomputes", 5}} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.cheat != 0 {
				role, first := mpc.Role((tc.cheat-1)%3), storiesRanges[tc.cheat/3][0]
				defer hop.SetMiscompute(func(_ *hop.Config, r mpc.Role, f, step int, y []uint64) {
					if r == role && f == first && step == 1 {
						y[len(y)-1] += 1 << 20
					}
				})()
			}
			l := &capLog{}
			cc := newConfRunCapture(t, true, l.add)
			for k, id := range prompt(t)[:3] {
				if err := cc.run(id); err != nil {
					t.Fatalf("step %d: the crosswise checks: %v", k, err)
				}
			}
			for _, pos := range []int{1, 2, 4, 5} {
				pt, err := verify.DecodePartyTicket(partyTicket(t, cc, l, pos).Append(nil))
				if err != nil {
					t.Fatal(err)
				}
				r := storiesRanges[pos/3]
				v, err := verify.CheckParty(context.Background(), pt, preparedStage(t, r[0], r[1]), storiesLayers)
				want := verify.Honest
				if pos == tc.cheat {
					want = verify.Fraud
				}
				if err != nil || v != want {
					t.Errorf("hop %d: %v, %v; want %v", pos, v, err, want)
				}
			}
		})
	}
}
