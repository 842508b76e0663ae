package verify

import (
	"bytes"
	"testing"
)

// FuzzDecodePartyTicket: an accepted party ticket re-encodes to the same
// bytes and Size says its length, and nothing panics. The seeds are small
// (the decoder does not look into the bodies): a real ticket's megabytes of
// PREPs would only slow the fuzzer down.
func FuzzDecodePartyTicket(f *testing.F) {
	for _, first := range []int{0, 2} {
		c := NewPartyChain(PartyBinding{ModelID: "m", First: first, Last: 5, Role: PartyB})
		pt := &PartyTicket{}
		for k := range 2 {
			v := PartyView{Record: PartyStep{Step: k, Start: 2 * k, Count: 2, Prep: [32]byte{1}},
				In: [][]byte{{1, 2}}, Prep: []byte{3}, Peer: [][]byte{{4}, {}, {5, 6}}}
			if first > 0 {
				v.In = append(v.In, []byte{7})
			}
			pc, _ := c.Commitment(&v.Record)
			pt.Commitment = pc
			pt.Steps = append(pt.Steps, v)
		}
		f.Add(pt.Append(nil))
		// The first step before the window, as state rows.
		pt.Prior = []PartyState{{Record: pt.Steps[0].Record, Opened: []byte{8, 9}, Masks: []byte{10}}}
		pt.Steps = pt.Steps[1:]
		f.Add(pt.Append(nil))
	}
	f.Add([]byte{PartyTicketVersion, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		pt, err := DecodePartyTicket(b)
		if err != nil {
			return
		}
		if !bytes.Equal(pt.Append(nil), b) || pt.Size() != len(b) {
			t.Fatalf("re-encoding differs")
		}
	})
}
