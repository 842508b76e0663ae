package gguf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/unfed/unfed/compute/modeltest"
)

func f32bytes(x ...float32) []byte {
	b := make([]byte, 0, 4*len(x))
	for _, f := range x {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(f))
	}
	return b
}

// tinyFile returns a small valid image with every metadata kind and two tensors.
func tinyFile(t testing.TB) []byte {
	w := NewWriter()
	w.AddString("general.architecture", "llama")
	w.AddUint32("llama.block_count", 2)
	w.AddUint64("big", 1<<40)
	w.AddInt32("neg", -7)
	w.AddFloat32("eps", 1e-5)
	w.AddBool("flag", true)
	w.AddStringArray("tokenizer.ggml.tokens", []string{"<unk>", "a", "▁b", ""})
	w.AddFloat32Array("tokenizer.ggml.scores", []float32{0, -1.5, 2})
	w.AddInt32Array("tokenizer.ggml.token_type", []int32{2, 1, 1, -3})
	if err := w.AddTensor("a", TypeF32, []uint64{3, 2}, f32bytes(1, 2, 3, 4, 5, 6)); err != nil {
		t.Fatal(err)
	}
	q := make([]byte, 34*2)
	q[0] = 0x3c // some non-zero bytes
	q[67] = 0x7f
	if err := w.AddTensor("b.q8", TypeQ8_0, []uint64{64}, q); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	n, err := w.WriteTo(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) {
		t.Fatalf("WriteTo reported %d bytes, wrote %d", n, buf.Len())
	}
	return buf.Bytes()
}

func TestRoundTrip(t *testing.T) {
	img := tinyFile(t)
	f, err := Parse(img)
	if err != nil {
		t.Fatal(err)
	}
	if f.Version != 3 || f.Alignment != 32 || f.DataOffset%32 != 0 {
		t.Fatalf("version %d alignment %d data offset %d", f.Version, f.Alignment, f.DataOffset)
	}
	if len(f.KV) != 9 || f.KV[0].Key != "general.architecture" || f.KV[8].Key != "tokenizer.ggml.token_type" {
		t.Fatalf("kv order: %v", f.KV)
	}
	if s, err := f.String("general.architecture"); err != nil || s != "llama" {
		t.Fatalf("String = %q, %v", s, err)
	}
	if n, err := f.Uint("llama.block_count"); err != nil || n != 2 {
		t.Fatalf("Uint = %d, %v", n, err)
	}
	if n, err := f.Uint("big"); err != nil || n != 1<<40 {
		t.Fatalf("Uint(big) = %d, %v", n, err)
	}
	if _, err := f.Uint("neg"); err == nil {
		t.Fatal("Uint accepted a negative value")
	}
	if x, err := f.Float("neg"); err != nil || x != -7 {
		t.Fatalf("Float(neg) = %v, %v", x, err)
	}
	if x, err := f.Float("eps"); err != nil || float32(x) != 1e-5 {
		t.Fatalf("Float = %v, %v", x, err)
	}
	if b, err := f.Bool("flag"); err != nil || !b {
		t.Fatalf("Bool = %v, %v", b, err)
	}
	if _, err := f.Bool("eps"); err == nil {
		t.Fatal("Bool accepted a float")
	}
	if _, err := f.String("nope"); !errors.Is(err, ErrMissing) {
		t.Fatalf("missing key error = %v", err)
	}
	toks, err := f.StringArray("tokenizer.ggml.tokens")
	if err != nil || strings.Join(toks, "|") != "<unk>|a|▁b|" {
		t.Fatalf("StringArray = %q, %v", toks, err)
	}
	sc, err := f.Float32Array("tokenizer.ggml.scores")
	if err != nil || len(sc) != 3 || sc[1] != -1.5 || sc[2] != 2 {
		t.Fatalf("Float32Array = %v, %v", sc, err)
	}
	tt, err := f.Int32Array("tokenizer.ggml.token_type")
	if err != nil || len(tt) != 4 || tt[0] != 2 || tt[3] != -3 {
		t.Fatalf("Int32Array = %v, %v", tt, err)
	}
	if _, err := f.Int32Array("tokenizer.ggml.scores"); err == nil {
		t.Fatal("Int32Array accepted floats")
	}
	a, ok := f.Tensor("a")
	if !ok || a.Type != TypeF32 || a.Size != 24 || a.Elements() != 6 || a.Offset != 0 {
		t.Fatalf("tensor a = %+v", a)
	}
	if !bytes.Equal(f.TensorData(a), f32bytes(1, 2, 3, 4, 5, 6)) {
		t.Fatal("tensor a data differs")
	}
	b, _ := f.Tensor("b.q8")
	if b.Offset != 32 || b.Size != 68 {
		t.Fatalf("tensor b = %+v", b)
	}
	d := f.TensorData(b)
	if len(d) != 68 || d[0] != 0x3c || d[67] != 0x7f || cap(d) != 68 {
		t.Fatalf("tensor b data len %d cap %d", len(d), cap(d))
	}
	if _, ok := f.Tensor("c"); ok {
		t.Fatal("found a tensor that does not exist")
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if f.TensorData(a) != nil {
		t.Fatal("TensorData after Close returned data")
	}
}

func TestWriterAlignment(t *testing.T) {
	w := NewWriter()
	w.AddUint32("general.alignment", 256)
	for _, name := range []string{"x", "y"} {
		if err := w.AddTensor(name, TypeF16, []uint64{2}, []byte{1, 2, 3, 4}); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	f, err := Parse(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	y, _ := f.Tensor("y")
	if f.Alignment != 256 || f.DataOffset%256 != 0 || y.Offset != 256 {
		t.Fatalf("alignment %d data offset %d y offset %d", f.Alignment, f.DataOffset, y.Offset)
	}
	if !bytes.Equal(f.TensorData(y), []byte{1, 2, 3, 4}) {
		t.Fatal("y data differs")
	}
}

func TestWriterRejects(t *testing.T) {
	w := NewWriter()
	if err := w.AddTensor("t", TypeF32, []uint64{3}, make([]byte, 8)); err == nil {
		t.Error("wrong data length accepted")
	}
	if err := w.AddTensor("t", TypeQ8_0, []uint64{16}, make([]byte, 17)); err == nil {
		t.Error("row not multiple of block accepted")
	}
	if err := w.AddTensor("t", TypeIQ2_XXS, []uint64{256}, nil); err == nil {
		t.Error("unsized type accepted")
	}
	if err := w.AddTensor("t", TypeF32, []uint64{1, 1, 1, 1, 1}, make([]byte, 4)); err == nil {
		t.Error("5 dims accepted")
	}
	if err := w.AddTensor("t", TypeF32, []uint64{1}, make([]byte, 4)); err != nil {
		t.Fatal(err)
	}
	if err := w.AddTensor("t", TypeF32, []uint64{1}, make([]byte, 4)); err == nil {
		t.Error("duplicate tensor accepted")
	}
	w.AddString("k", "v")
	w.AddString("k", "w")
	if _, err := w.WriteTo(&bytes.Buffer{}); err == nil {
		t.Error("duplicate key accepted")
	}
	w = NewWriter()
	w.AddUint32("general.alignment", 48)
	if _, err := w.WriteTo(&bytes.Buffer{}); err == nil {
		t.Error("alignment 48 accepted")
	}
}

func TestTypeSizes(t *testing.T) {
	cases := []struct {
		typ         Type
		name        string
		block, size uint64
	}{
		{TypeF32, "F32", 1, 4}, {TypeF16, "F16", 1, 2}, {TypeBF16, "BF16", 1, 2},
		{TypeQ4_0, "Q4_0", 32, 18}, {TypeQ4_1, "Q4_1", 32, 20}, {TypeQ5_0, "Q5_0", 32, 22},
		{TypeQ5_1, "Q5_1", 32, 24}, {TypeQ8_0, "Q8_0", 32, 34}, {TypeQ8_1, "Q8_1", 32, 36},
		{TypeQ2_K, "Q2_K", 256, 84}, {TypeQ3_K, "Q3_K", 256, 110}, {TypeQ4_K, "Q4_K", 256, 144},
		{TypeQ5_K, "Q5_K", 256, 176}, {TypeQ6_K, "Q6_K", 256, 210}, {TypeQ8_K, "Q8_K", 256, 292},
	}
	for _, c := range cases {
		if c.typ.String() != c.name || c.typ.BlockSize() != c.block || c.typ.TypeSize() != c.size {
			t.Errorf("%v: block %d size %d", c.typ, c.typ.BlockSize(), c.typ.TypeSize())
		}
	}
	if Type(4).String() != "type(4)" || Type(4).Sizable() {
		t.Error("removed type 4 is known")
	}
	if n, err := TypeQ8_0.RowSize(4096); err != nil || n != 128*34 {
		t.Errorf("Q8_0 row of 4096 = %d, %v", n, err)
	}
	if _, err := TypeF32.RowSize(1 << 63); err == nil {
		t.Error("overflowing size accepted")
	}
}

// patch returns a copy of img with b written at off.
func patch(img []byte, off int, b ...byte) []byte {
	out := append([]byte(nil), img...)
	copy(out[off:], b)
	return out
}

func le64(x uint64) []byte { return binary.LittleEndian.AppendUint64(nil, x) }
func le32(x uint32) []byte { return binary.LittleEndian.AppendUint32(nil, x) }

// header builds the fixed header followed by body.
func header(version uint32, nTensors, nKV uint64, body ...[]byte) []byte {
	b := []byte(magic)
	b = append(b, le32(version)...)
	b = append(b, le64(nTensors)...)
	b = append(b, le64(nKV)...)
	for _, p := range body {
		b = append(b, p...)
	}
	return b
}

func gstr(s string) []byte { return append(le64(uint64(len(s))), s...) }

func TestParseRejects(t *testing.T) {
	img := tinyFile(t)
	cases := []struct {
		name string
		img  []byte
		want string
	}{
		{"empty", nil, "truncated"},
		{"magic", patch(img, 0, 'G', 'G', 'U', 'X'), "bad magic"},
		{"v1", header(1, 0, 0), "version 1 is unsupported"},
		{"v4", header(4, 0, 0), "unsupported version"},
		{"big-endian", header(0x03000000, 0, 0), "big-endian"},
		{"kv count", header(3, 0, 1<<40), "kv count"},
		{"tensor count", header(3, 1<<40, 0), "tensor count"},
		{"key length", header(3, 0, 1, le64(1<<62), make([]byte, 8)), "kv key length"},
		{"string length", header(3, 0, 1, gstr("k"), le32(uint32(ValueString)), le64(1<<20)), "truncated string value"},
		{"string limit", header(3, 0, 1, gstr("k"), le32(uint32(ValueString)), le64(1<<30)), "exceeds limit"},
		{"array length", header(3, 0, 1, gstr("k"), le32(uint32(ValueArray)), le32(uint32(ValueUint64)), le64(1<<25), make([]byte, 16)), "exceeds what the file can hold"},
		{"array limit", header(3, 0, 1, gstr("k"), le32(uint32(ValueArray)), le32(uint32(ValueUint8)), le64(1<<40)), "exceeds limit"},
		{"string array", header(3, 0, 1, gstr("k"), le32(uint32(ValueArray)), le32(uint32(ValueString)), le64(1000), make([]byte, 100)), "exceeds what the file can hold"},
		{"nested", header(3, 0, 1, gstr("k"), le32(uint32(ValueArray)), le32(uint32(ValueArray)), le64(0)), "nested arrays"},
		{"value type", header(3, 0, 1, gstr("k"), le32(99), make([]byte, 8)), "unsupported value type"},
		{"bool", header(3, 0, 1, gstr("k"), le32(uint32(ValueBool)), []byte{2}, make([]byte, 12)), "bool value"},
		{"dup key", header(3, 0, 2, gstr("k"), le32(uint32(ValueUint8)), []byte{1}, gstr("k"), le32(uint32(ValueUint8)), []byte{1}), "duplicate key"},
		{"alignment", header(3, 0, 1, gstr("general.alignment"), le32(uint32(ValueUint32)), le32(24), make([]byte, 8)), "general.alignment"},
		{"dims", header(3, 1, 0, gstr("t"), le32(5), make([]byte, 64)), "dimensions"},
		{"dim overflow", header(3, 1, 0, gstr("t"), le32(2), le64(1<<40), le64(1<<40), le32(0), le64(0)), "overflows"},
		{"tensor type", header(3, 1, 0, gstr("t"), le32(1), le64(4), le32(4), le64(0)), "unsupported type"},
		{"block", header(3, 1, 0, gstr("t"), le32(1), le64(16), le32(uint32(TypeQ8_0)), le64(0)), "block size"},
		{"unaligned", header(3, 1, 0, gstr("t"), le32(1), le64(1), le32(0), le64(4), make([]byte, 64)), "not aligned"},
		{"outside", header(3, 1, 0, gstr("t"), le32(1), le64(64), le32(0), le64(0), make([]byte, 64)), "outside the file"},
		{"dup tensor", header(3, 2, 0, gstr("t"), le32(1), le64(1), le32(0), le64(0), gstr("t"), le32(1), le64(1), le32(0), le64(32), make([]byte, 64)), "duplicate tensor"},
	}
	for _, c := range cases {
		_, err := Parse(c.img)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to mention %q", c.name, err, c.want)
		}
	}
	if _, err := Parse(header(1, 0, 0)); !errors.Is(err, ErrUnsupportedVersion) {
		t.Errorf("v1 error %v is not ErrUnsupportedVersion", err)
	}
	// Version 2 has the same layout and is accepted.
	if _, err := Parse(patch(img, 4, 2)); err != nil {
		t.Errorf("v2: %v", err)
	}
}

func TestTruncations(t *testing.T) {
	img := tinyFile(t)
	for n := 0; n < len(img); n++ {
		if _, err := Parse(img[:n]); err == nil {
			t.Fatalf("truncation to %d of %d bytes accepted", n, len(img))
		}
	}
}

func TestOpenModels(t *testing.T) {
	f, err := Open(modeltest.Path(t, "stories260K.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if arch, err := f.String("general.architecture"); err != nil || arch != "llama" {
		t.Fatalf("architecture %q, %v", arch, err)
	}
	for key, want := range map[string]uint64{"llama.embedding_length": 64, "llama.block_count": 5,
		"llama.attention.head_count": 8, "llama.attention.head_count_kv": 4, "llama.feed_forward_length": 172,
		"tokenizer.ggml.bos_token_id": 1, "tokenizer.ggml.eos_token_id": 2} {
		if got, err := f.Uint(key); err != nil || got != want {
			t.Errorf("%s = %d, %v; want %d", key, got, err, want)
		}
	}
	toks, err := f.StringArray("tokenizer.ggml.tokens")
	if err != nil || len(toks) != 512 || toks[1] != "<s>" {
		t.Fatalf("tokens: %d, %v", len(toks), err)
	}
	if len(f.Tensors) != 3+5*9 {
		t.Fatalf("%d tensors", len(f.Tensors))
	}
	emb, ok := f.Tensor("token_embd.weight")
	if !ok || emb.Type != TypeF32 || len(emb.Dims) != 2 || emb.Dims[0] != 64 || emb.Dims[1] != 512 {
		t.Fatalf("token_embd = %+v", emb)
	}
	// The llama2.c checkpoint of the same model stores the embedding table
	// right after its 7-int32 header: the bytes must be identical.
	bin, err := os.ReadFile(modeltest.Path(t, "stories260K.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(f.TensorData(emb), bin[28:28+emb.Size]) {
		t.Fatal("token_embd.weight differs from the llama2.c checkpoint's embedding")
	}

	g, err := Open(modeltest.Path(t, "llama-2-tiny-random.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	toks, err = g.StringArray("tokenizer.ggml.tokens")
	if err != nil || len(toks) != 32000 || toks[13] != "<0x0A>" {
		t.Fatalf("llama-2 tokens: %d, %v", len(toks), err)
	}
	types := map[Type]int{}
	for i := range g.Tensors {
		types[g.Tensors[i].Type]++
		if d := g.TensorData(&g.Tensors[i]); uint64(len(d)) != g.Tensors[i].Size {
			t.Fatalf("%s: %d bytes of data", g.Tensors[i].Name, len(d))
		}
	}
	if types[TypeF16] == 0 || types[TypeF32] == 0 {
		t.Fatalf("tensor types %v, want F16 and F32", types)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(dir + "/missing.gguf"); err == nil {
		t.Error("missing file opened")
	}
	short := dir + "/short.gguf"
	if err := os.WriteFile(short, []byte("GGUF"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(short); err == nil || !strings.Contains(err.Error(), "too short") {
		t.Errorf("short file: %v", err)
	}
	img := tinyFile(t)
	bad := dir + "/bad.gguf"
	if err := os.WriteFile(bad, img[:len(img)-1], 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(bad); err == nil {
		t.Error("truncated file opened")
	}
}

func TestValueString(t *testing.T) {
	f, err := Parse(tinyFile(t))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"general.architecture":  `"llama"`,
		"neg":                   "-7",
		"flag":                  "true",
		"tokenizer.ggml.tokens": `[STRING × 4: "<unk>" "a" "▁b" ""]`,
		"tokenizer.ggml.scores": "[FLOAT32 × 3: 0 -1.5 2]",
	}
	for k, w := range want {
		v, _ := f.Get(k)
		if v.String() != w {
			t.Errorf("%s: %s, want %s", k, v.String(), w)
		}
	}
}
