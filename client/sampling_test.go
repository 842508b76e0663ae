package client

import (
	"testing"
)

// TestSamplingSeededFromCryptoRand: the generators guard and path sampling
// draw from take their whole seed from crypto/rand (readSeed): every one
// reads 32 bytes from it, generators given the same seed draw the same
// (nothing weaker is mixed in), and with crypto/rand two never coincide.
func TestSamplingSeededFromCryptoRand(t *testing.T) {
	defer func() { readSeed = cryptoRead }()
	reads := 0
	readSeed = func(b []byte) (int, error) {
		reads++
		if len(b) != 32 {
			t.Errorf("seed of %d bytes, want 32", len(b))
		}
		for i := range b {
			b[i] = 7
		}
		return len(b), nil
	}
	g, err := LoadGuards(t.TempDir(), GuardConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rs := newRelayState(nil)
	if reads != 2 {
		t.Fatalf("guards and relay state read %d seeds from crypto/rand, want 2", reads)
	}
	draws := func(r interface{ Uint64() uint64 }) [4]uint64 {
		return [4]uint64{r.Uint64(), r.Uint64(), r.Uint64(), r.Uint64()}
	}
	if draws(g.rng) != draws(rs.rng) {
		t.Fatal("generators with the same crypto/rand seed draw differently: something else seeds them")
	}
	readSeed = cryptoRead
	first, second := newSamplingRand(), newSamplingRand()
	if draws(first) == draws(second) {
		t.Fatal("two generators seeded from crypto/rand coincide")
	}
}

// cryptoRead is readSeed as the package initialised it: crypto/rand.
var cryptoRead = readSeed
