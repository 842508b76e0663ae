package llama2c

import (
	"encoding/binary"
	"errors"
	"os"
	"testing"

	"github.com/unfed/unfed/compute/modeltest"
)

func header(v ...int32) []byte {
	b := make([]byte, 0, 28)
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, uint32(x))
	}
	return b
}

// tiny builds a valid checkpoint: dim 4, hidden 8, 2 layers, 2 heads, 1 kv head, vocab v, seq 3.
func tiny(vocab int32) []byte {
	dim, hid, L, kv, seq := 4, 8, 2, 2, 3
	n := int(abs(vocab))*dim + L*dim + L*dim*dim + 2*L*dim*kv + L*dim*dim + L*dim + 3*L*dim*hid + dim + 2*seq*(dim/2)/2
	if vocab < 0 {
		n += int(-vocab) * dim
	}
	b := header(int32(dim), int32(hid), int32(L), 2, 1, vocab, int32(seq))
	return append(b, make([]byte, 4*n)...)
}

func abs(x int32) int32 {
	if x < 0 {
		return -x
	}
	return x
}

func TestParseTiny(t *testing.T) {
	c, err := Parse(tiny(10))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Config.SharedClassifier || len(c.Tensors) != 1+2*9+1 {
		t.Fatalf("shared: %v, %d tensors", c.Config.SharedClassifier, len(c.Tensors))
	}
	k, ok := c.Tensor("blk.1.attn_k.weight")
	if !ok || k.Dims[0] != 4 || k.Dims[1] != 2 || len(k.Data) != 32 {
		t.Fatalf("attn_k: %+v", k)
	}
	c, err = Parse(tiny(-10))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Tensor("output.weight"); !ok || c.Config.SharedClassifier || c.Config.VocabSize != 10 {
		t.Fatal("unshared classifier missing")
	}
	full := tiny(10)
	if _, err := Parse(full[:len(full)-1]); !errors.Is(err, ErrFormat) {
		t.Fatalf("truncated file: %v", err)
	}
}

func TestBadHeaders(t *testing.T) {
	for _, h := range [][]int32{
		{0, 8, 2, 2, 1, 10, 3},       // dim 0
		{4, 8, 2, 3, 1, 10, 3},       // heads do not divide dim
		{4, 8, 2, 2, 3, 10, 3},       // kv heads > heads
		{4, 8, 0, 2, 1, 10, 3},       // no layers
		{4, 8, 2, 2, 1, 0, 3},        // no vocab
		{4, 8, 2, 2, 1, 10, -1},      // seq len
		{1 << 30, 8, 2, 2, 1, 10, 3}, // huge dim
		{4, 8, 2, 4, 1, 10, 3},       // odd head size (1)
	} {
		if _, err := Parse(append(header(h...), make([]byte, 4096)...)); !errors.Is(err, ErrFormat) {
			t.Fatalf("header %v: %v", h, err)
		}
	}
	if _, err := Parse([]byte{1, 2, 3}); !errors.Is(err, ErrFormat) {
		t.Fatal("3-byte file accepted")
	}
}

func TestStories260K(t *testing.T) {
	p := modeltest.Path(t, "stories260K.bin")
	c, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := Config{Dim: 64, HiddenDim: 172, NLayers: 5, NHeads: 8, NKVHeads: 4, VocabSize: 512, SeqLen: 512, SharedClassifier: true}
	if c.Config != want {
		t.Fatalf("config %+v", c.Config)
	}
	st, _ := os.Stat(p)
	last := c.Tensors[len(c.Tensors)-1]
	if last.Name != "output_norm.weight" || len(last.Data) != 64*4 {
		t.Fatalf("last tensor %s, %d bytes", last.Name, len(last.Data))
	}
	// header + weights + two RoPE tables is the whole file
	var n int64 = HeaderSize + 2*4*512*(8/2)
	for _, tn := range c.Tensors {
		n += int64(len(tn.Data))
	}
	if n != st.Size() {
		t.Fatalf("layout covers %d of %d bytes", n, st.Size())
	}
}

func FuzzParse(f *testing.F) {
	f.Add(tiny(10))
	f.Add(tiny(-10))
	f.Add(header(4, 8, 2, 2, 1, 10, 3))
	f.Add([]byte{})
	f.Add(header(64, 172, 5, 8, 4, 512, 512))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err != nil {
			return
		}
		for _, tn := range c.Tensors {
			n := uint64(4)
			for _, d := range tn.Dims {
				n *= d
			}
			if uint64(len(tn.Data)) != n {
				t.Fatalf("%s: %d bytes for dims %v", tn.Name, len(tn.Data), tn.Dims)
			}
		}
	})
}
