package model

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"
	"testing"

	"github.com/unfed/unfed/compute/modeltest"
	"github.com/unfed/unfed/compute/tensor"
)

// goldenStories260K is the SHA-256 of the bits of every logit of
// stories260KLogits. The determinism contract (spec/07-model.md §6) makes
// it the same with the assembly kernels, with tensor.UsePortable, and in the
// portable build (-tags purego, the code other architectures run): a
// verifier's re-execution must give a relay's bits (spec/11-verification.md
// §4.1).
const goldenStories260K = "f2e4dc80a3f441ab8f7959820cade774c95b404f57cab87d2bf5da11153ee9f4"

// stories260KLogits hashes the logits of a 12-token prompt in one batch
// (the batched kernels) and of 6 single-token steps after it (decode).
func stories260KLogits(t *testing.T) string {
	t.Helper()
	sh, err := Load(modeltest.Path(t, "stories260K.gguf"), ShardOptions{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Close()
	ss, err := sh.NewSession(SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	h := sha256.New()
	put := func(v []float32) {
		var b [4]byte
		for _, x := range v {
			binary.LittleEndian.PutUint32(b[:], math.Float32bits(x))
			h.Write(b[:])
		}
	}
	prompt := []int{1, 403, 407, 261, 378, 30, 300, 5, 411, 260, 99, 31}
	logits, err := ss.ForwardTokens(prompt, 0)
	if err != nil {
		t.Fatal(err)
	}
	put(logits)
	for i, id := range []int{29, 7, 263, 501, 2, 64} {
		if logits, err = ss.ForwardTokens([]int{id}, len(prompt)+i); err != nil {
			t.Fatal(err)
		}
		put(logits)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestGoldenStories260K: the logits have the same bits with this build's
// kernels and on the portable path.
func TestGoldenStories260K(t *testing.T) {
	if got := stories260KLogits(t); got != goldenStories260K {
		t.Errorf("kernels: logits hash to %s, want %s", got, goldenStories260K)
	}
	restore := tensor.UsePortable()
	defer restore()
	if got := stories260KLogits(t); got != goldenStories260K {
		t.Errorf("portable: logits hash to %s, want %s", got, goldenStories260K)
	}
}
