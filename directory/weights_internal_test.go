package directory

import (
	"encoding/binary"
	"testing"

	"github.com/unfed/unfed/relay/keys"
)

// BenchmarkAssignWeights10k: the weights step of method 2 (spec §7.4) on
// its own, for 10,000 relays measured by three authorities: what method 2
// adds to computing a consensus.
func BenchmarkAssignWeights10k(b *testing.B) {
	const n = 10000
	votes := make([]*Vote, 3)
	relays := make([]RouterStatus, n)
	for i := range relays {
		var fp keys.Fingerprint
		binary.BigEndian.PutUint32(fp[:], uint32(i))
		relays[i] = RouterStatus{Fingerprint: fp, Capacity: Capacity{Sessions: 64}}
	}
	for a := range votes {
		vr := make([]RouterStatus, n)
		for i := range vr {
			vr[i] = RouterStatus{Fingerprint: relays[i].Fingerprint, Measured: uint64(1000 + (i*7+a*13)%5000)}
		}
		votes[a] = &Vote{Relays: vr}
	}
	for b.Loop() {
		assignWeights(relays, votes, 2, nil)
	}
}
