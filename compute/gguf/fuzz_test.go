package gguf

import "testing"

func FuzzParse(f *testing.F) {
	img := tinyFile(f)
	f.Add(img)
	for _, n := range []int{0, 4, 8, 24, 40, len(img) / 2, len(img) - 1} {
		f.Add(img[:n])
	}
	f.Add(header(3, 0, 1, gstr("k"), le32(uint32(ValueArray)), le32(uint32(ValueString)), le64(2), gstr("a"), gstr("b")))
	f.Add(header(2, 1, 0, gstr("t"), le32(1), le64(8), le32(uint32(TypeF32)), le64(0), make([]byte, 64)))
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := Parse(data)
		if err != nil {
			return
		}
		for i := range g.Tensors {
			ti := &g.Tensors[i]
			if d := g.TensorData(ti); uint64(len(d)) != ti.Size {
				t.Fatalf("tensor %q: %d bytes, size %d", ti.Name, len(d), ti.Size)
			}
		}
		for _, kv := range g.KV {
			_ = kv.Value.String()
		}
	})
}
