package mpc

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/unfed/unfed/compute/modeltest"
)

// stageViews runs tokens through a two-stage stories260K pipeline with
// dealer seed seed and returns, per stage, every value the parties opened
// (A's and B's round messages added) and every byte each party received.
func stageViews(t *testing.T, path string, tokens []int, seed uint64) (opened [][]uint64, received [][]byte) {
	t.Helper()
	sp := newStagePipeline(t, path, [][2]int{{0, 2}, {2, 5}}, seed)
	var preps [][]byte
	sp.mutate = func(_ int, a, b []byte) { preps = append(preps, a, b) }
	for _, tok := range tokens {
		sp.token(t, tok)
	}
	for _, st := range sp.stages {
		var vals []uint64
		for i := range st.pa.Received {
			a, b := st.pa.Received[i][peerHeader:], st.pb.Received[i][peerHeader:]
			for j := 0; j+8 <= len(a); j += 8 {
				vals = append(vals, binary.BigEndian.Uint64(a[j:])+binary.BigEndian.Uint64(b[j:]))
			}
		}
		opened = append(opened, vals)
		received = append(received, bytes.Join(append(append([][]byte{}, st.pa.Received...), st.pb.Received...), nil))
	}
	received = append(received, bytes.Join(preps, nil))
	return opened, received
}

// unmasked counts the opened values that are nearly equal in two runs on
// the same tokens with different dealer randomness: a value opened with a
// fresh mask differs between the runs by a uniform ring element, one opened
// without it is the same plaintext up to the truncations' last-place errors.
func unmasked(x, y [][]uint64) (n, total int) {
	for s := range x {
		for i := range x[s] {
			d := int64(x[s][i] - y[s][i])
			if d < 0 {
				d = -d
			}
			if d < 1<<36 {
				n++
			}
			total++
		}
	}
	return n, total
}

// TestConfidentialViewsMutation checks what the parties of a confidential
// circuit see (spec/10 §9): over two runs on the same prompt with different
// dealer randomness, no opened value repeats (every opening is masked
// afresh), and no view contains a token's embedding row in any encoding.
// Then, for every mask the dealer draws in a layer (Beaver, truncation,
// lookup and KV-cache masks alike), it skips that one mask and checks that
// the same test now finds unmasked openings: the test fails if any mask of
// the protocol were missing.
func TestConfidentialViewsMutation(t *testing.T) {
	path := modeltest.Path(t, "stories260K.gguf")
	tokens := storiesTokens(t, "Once upon a time")[:3]
	o1, r1 := stageViews(t, path, tokens, 101)
	o2, _ := stageViews(t, path, tokens, 202)
	if n, total := unmasked(o1, o2); n != 0 || total < 10000 {
		t.Fatalf("%d of %d opened values repeat between runs with different dealer randomness", n, total)
	}
	ends := newStagePipeline(t, path, [][2]int{{0, 1}}, 1).ends
	for _, tok := range tokens {
		row, err := ends.Embed(tok)
		if err != nil {
			t.Fatal(err)
		}
		w := &Weights{Config: Config{Dim: len(row)}, Embedding: make([]float32, (tok+1)*len(row))}
		copy(w.Embedding[tok*len(row):], row)
		for _, v := range r1 {
			for _, enc := range encodings(w, tok)[2:] {
				if bytes.Contains(v, enc) {
					t.Fatalf("a party's view contains an encoding of token %d's embedding row", tok)
				}
			}
		}
	}

	// The masks of one layer: count the dealer's draws per step.
	calls := 0
	zeroUniform = func(k int) bool { calls = max(calls, k+1); return false }
	stageViews(t, path, tokens[:1], 7)
	perLayer := calls / 3 // stage 1 has layers 0 and 1, stage 2 layers 2..4: count stage 2's 3 layers
	zeroUniform = nil
	if perLayer < 10 {
		t.Fatalf("%d dealer draws per layer", perLayer)
	}
	defer func() { zeroUniform = nil }()
	for k := 0; k < perLayer; k++ {
		zeroUniform = func(i int) bool { return i == k }
		m1, _ := stageViews(t, path, tokens, 101)
		m2, _ := stageViews(t, path, tokens, 202)
		zeroUniform = nil
		if n, _ := unmasked(m1, m2); n == 0 {
			t.Errorf("dealer draw %d of layer 0 skipped: no unmasked opening found", k)
		}
	}
	t.Logf("%d opened values per run; each of the %d masks of a layer, skipped, was caught", len(o1[0])+len(o1[1]), perLayer)
}
