package model

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/unfed/unfed/compute/modeltest"
)

const manifestVector = "../../spec/vectors/model/stories260K.gguf.manifest"

func TestManifestVector(t *testing.T) {
	want, err := os.ReadFile(manifestVector)
	if err != nil {
		t.Fatal(err)
	}
	m, err := ComputeManifest(modeltest.Path(t, "stories260K.gguf"), 2)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Encode(); !bytes.Equal(got, want) {
		t.Fatalf("manifest of stories260K.gguf differs from the vector:\n%s", got)
	}
	p, err := ParseManifest(want)
	if err != nil {
		t.Fatal(err)
	}
	if p.ID != m.ID || !bytes.Equal(p.Encode(), want) || len(p.Shards) != 2 || p.Shards[1] != (LayerRange{3, 5}) {
		t.Fatal("parse/encode round trip differs")
	}
	for i, r := range p.Shards {
		if err := p.VerifyShard(modeltest.Path(t, "stories260K.gguf"), r.First, r.Last); err != nil {
			t.Fatalf("shard %d: %v", i, err)
		}
	}
	// the llama2.c file has other tensors (no output.weight) and another id
	if err := p.VerifyShard(modeltest.Path(t, "stories260K.bin"), 3, 5); !errors.Is(err, ErrManifest) {
		t.Fatalf("llama2.c file verified against the GGUF manifest: %v", err)
	}
}

func TestManifestRejects(t *testing.T) {
	good, err := os.ReadFile(manifestVector)
	if err != nil {
		t.Fatal(err)
	}
	mut := func(old, new string) []byte { return []byte(strings.Replace(string(good), old, new, 1)) }
	cases := map[string][]byte{
		"changed hyperparameter": mut("ffn 172", "ffn 173"),
		"changed tensor hash":    mut("tensor blk.0.attn_k.weight f32 64x32 ", "tensor blk.0.attn_k.weight f32 64x32 0"),
		"shard gap":              mut("shard 1 3 5", "shard 1 4 5"),
		"shard short":            mut("shard 1 3 5", "shard 1 3 4"),
		"no newline":             good[:len(good)-1],
		"bad magic":              mut("unfed-model-manifest 2", "unfed-model-manifest 3"),
		"version 1":              mut("unfed-model-manifest 2", "unfed-model-manifest 1"),
		"leading zero":           mut("dim 64", "dim 064"),
		"control byte":           mut("arch llama", "arch ll\tama"),
		"bad rope style":         mut("rope-style adjacent", "rope-style spiral"),
		"unsorted":               mut("tensor blk.0.attn_k", "tensor zzz.attn_k"),
	}
	for name, b := range cases {
		if _, err := ParseManifest(b); !errors.Is(err, ErrManifest) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestSplitLayers(t *testing.T) {
	for n := 1; n <= 30; n++ {
		for k := 1; k <= n+2; k++ {
			rs := SplitLayers(n, k)
			if len(rs) != min(k, n) || rs[0].First != 0 || rs[len(rs)-1].Last != n {
				t.Fatalf("SplitLayers(%d, %d) = %v", n, k, rs)
			}
			for i := 1; i < len(rs); i++ {
				a, b := rs[i-1].Last-rs[i-1].First, rs[i].Last-rs[i].First
				if rs[i].First != rs[i-1].Last || a < b || a-b > 1 {
					t.Fatalf("SplitLayers(%d, %d) = %v", n, k, rs)
				}
			}
		}
	}
}

func FuzzParseManifest(f *testing.F) {
	if b, err := os.ReadFile(manifestVector); err == nil {
		f.Add(b)
	}
	f.Add([]byte("unfed-model-manifest 2\n"))
	f.Add([]byte{})
	f.Add([]byte("unfed-model-manifest 2\narch qwen2\ndim 64\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseManifest(b)
		if err != nil {
			return
		}
		if !bytes.Equal(m.Encode(), b) {
			t.Fatalf("accepted manifest does not re-encode to itself")
		}
	})
}
