package client

import (
	"testing"
)

// TestConfidentialGuardBytesFlat (issue 22 item 9): the traffic a
// confidential generation sends through the guard per token does not grow
// with the position (it once did: the client dealt correlated randomness
// whose attention part grows with the context, 7 MB for 16 tokens and 439
// MB for 256). The guard's link bytes are read as a 64-token greedy stream
// passes tokens 8, 16, 32 and 64; the bytes per token over positions 32-64
// must stay within 1.5x of those over positions 8-16 (a cost linear in the
// position would make it about 4x).
func TestConfidentialGuardBytesFlat(t *testing.T) {
	n := sharedNet(t)
	rc := startClient(t, n, t.TempDir(), nil)
	guard := n.relays["guard"]
	at := map[int]float64{}
	rc.stream(t, n.modelID, 64, func(i int, _ string) {
		switch i + 1 {
		case 8, 16, 32, 64:
			at[i+1] = guard.linkBytes()
		}
	})
	if len(at) != 4 {
		t.Fatalf("the stream ended before 64 pieces (samples at %v)", at)
	}
	early := (at[16] - at[8]) / 8
	late := (at[64] - at[32]) / 32
	t.Logf("guard bytes per token: %.0f over positions 8-16, %.0f over 32-64", early, late)
	if early <= 0 || late > 1.5*early {
		t.Fatalf("guard bytes per token grew with position: %.0f over positions 8-16, %.0f over 32-64", early, late)
	}
}
