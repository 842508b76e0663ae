package model

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/unfed/unfed/compute/gguf"
	"github.com/unfed/unfed/compute/modeltest"
)

func writeBundleFile(t testing.TB, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "bundle.gguf")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestBundleRoundTrip: a bundle of stories260K verifies, names the model's
// id and tensor hash root, and its ends compute bit for bit what the model
// file's do.
func TestBundleRoundTrip(t *testing.T) {
	path := modeltest.Path(t, "stories260K.gguf")
	b, man, err := BundleBytes(path)
	if err != nil {
		t.Fatal(err)
	}
	full, err := ComputeManifest(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	if man.ID != full.ID || man.Root() != full.Root() || man.Tokenizer == nil {
		t.Fatalf("bundle manifest %x root %x, model %x root %x", man.ID, man.Root(), full.ID, full.Root())
	}
	got, ends, err := OpenBundle(writeBundleFile(t, b))
	if err != nil {
		t.Fatal(err)
	}
	defer ends.Close()
	if got.ID != full.ID || got.Root() != full.Root() {
		t.Fatalf("opened bundle names %x", got.ID)
	}
	ref, err := LoadEnds(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	for _, id := range []int{0, 1, 403, 511} {
		a, _ := ends.Embed(id)
		r, _ := ref.Embed(id)
		la, _ := ends.Logits(a)
		lr, _ := ref.Logits(r)
		for i := range lr {
			if math.Float32bits(la[i]) != math.Float32bits(lr[i]) {
				t.Fatalf("token %d logit %d: bundle %v, model %v", id, i, la[i], lr[i])
			}
		}
	}
	fi, _ := os.Stat(path)
	t.Logf("bundle %d bytes, model file %d", len(b), fi.Size())
}

// tensorOffset returns where tensor name's data starts in bundle b.
func tensorOffset(t *testing.T, b []byte, name string) int {
	t.Helper()
	f, err := gguf.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	ti, ok := f.Tensor(name)
	if !ok {
		t.Fatalf("no %s", name)
	}
	return int(f.DataOffset + ti.Offset)
}

// TestBundleTamperedRefused: one byte changed in the embedding, in the
// final norm, in a token's text, or in the manifest, and the bundle is
// refused with ErrBundle.
func TestBundleTamperedRefused(t *testing.T) {
	b, _, err := BundleBytes(modeltest.Path(t, "stories260K.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	tok := bytes.Index(b, []byte("Once"))
	man := bytes.Index(b, []byte("tensor token_embd.weight f32"))
	if tok < 0 || man < 0 {
		t.Fatal("cannot find the token text or the manifest in the bundle")
	}
	cases := map[string]int{
		"embedding":  tensorOffset(t, b, nameEmbedding) + 1000,
		"final norm": tensorOffset(t, b, nameOutNorm) + 3,
		"token text": tok + 1,
		"manifest":   man + len("tensor token_embd.weight f32 64x512 ") + 5,
	}
	for name, off := range cases {
		c := bytes.Clone(b)
		c[off] ^= 0x01
		if _, e, err := OpenBundle(writeBundleFile(t, c)); !errors.Is(err, ErrBundle) {
			if e != nil {
				e.Close()
			}
			t.Errorf("%s changed: err %v, want ErrBundle", name, err)
		}
	}
	// The untouched bundle still opens: the cases above failed for their
	// byte, not for how the test writes files.
	_, e, err := OpenBundle(writeBundleFile(t, b))
	if err != nil {
		t.Fatal(err)
	}
	e.Close()
}

// FuzzOpenBundle: arbitrary bytes never panic the bundle reader, and a
// bundle it accepts is bound to its manifest: the manifest's tensor hashes
// are those of the bundle's tensors.
func FuzzOpenBundle(f *testing.F) {
	b, _, err := BundleBytes(modeltest.Path(f, "stories260K.gguf"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add(b[:len(b)/2])
	f.Add([]byte("GGUF"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, in []byte) {
		p := filepath.Join(dir, "fuzz.gguf")
		if err := os.WriteFile(p, in, 0o600); err != nil {
			t.Fatal(err)
		}
		man, e, err := OpenBundle(p)
		if err != nil {
			return
		}
		defer e.Close()
		g := e.GGUF()
		for _, name := range BundleTensorNames(man.Config) {
			ti, _ := g.Tensor(name)
			h := sha256.Sum256(g.TensorData(ti))
			found := false
			for _, te := range man.Tensors {
				found = found || (te.Name == name && te.Hash == h)
			}
			if !found {
				t.Fatalf("accepted a bundle whose %s is not the manifest's", name)
			}
		}
	})
}
