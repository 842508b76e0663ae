package verify

import (
	"crypto/ed25519"
	"crypto/sha256"
	"testing"
)

// BenchmarkCommitSign is a hop's cost per step: hashing one f32 row of a
// 896-wide model in and out, advancing the chain, and signing.
func BenchmarkCommitSign(b *testing.B) {
	priv := ed25519.NewKeyFromSeed(make([]byte, 32))
	pub := priv.Public().(ed25519.PublicKey)
	ch := NewChain(Binding{ModelID: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", First: 4, Last: 8,
		InKind: KindF32, OutKind: KindF32})
	row := make([]float32, 896)
	in, out := NewHasher(KindF32), NewHasher(KindF32)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		in.Floats(row)
		out.Floats(row)
		c, _ := ch.Commitment(&Step{Start: i, Count: 1, In: in.Sum(), Out: out.Sum()})
		if err := c.Sign(edSigner(priv), pub); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCommitVerify is the client's cost per hop per step: rebuild the
// commitment from a COMMIT and verify its signature.
func BenchmarkCommitVerify(b *testing.B) {
	priv := ed25519.NewKeyFromSeed(make([]byte, 32))
	pub := priv.Public().(ed25519.PublicKey)
	bind := Binding{ModelID: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", First: 4, Last: 8}
	copy(bind.Identity[:], pub)
	hopCh, cliCh := NewChain(bind), NewChain(bind)
	var steps []Step
	for i := range 1024 {
		c, _ := hopCh.Commitment(&Step{Start: i, Count: 1})
		_ = c.Sign(edSigner(priv), pub)
		steps = append(steps, Step{Start: i, Count: 1, Sig: c.Sig})
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i == len(steps) {
			cliCh, i = NewChain(bind), 0
		}
		c, ok := cliCh.Commitment(&steps[i])
		if !ok || !c.Verify() {
			b.Fatal("does not verify")
		}
		i++
	}
}

// BenchmarkBodyHash: H of a stories260K stage-1 PREP's size (about a layer's
// PREP to party B), as party commitments hash it (BLAKE3-256) against
// SHA-256 (party commitments of version 3), in one run.
func BenchmarkBodyHash(b *testing.B) {
	body := make([]byte, 220<<10)
	for i := range body {
		body[i] = byte(i * 7)
	}
	b.Run("blake3", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			BodyHash(body)
		}
	})
	b.Run("sha256", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			sha256.Sum256(body)
		}
	})
}
