package computecli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unfed/unfed/compute/model"
	"github.com/unfed/unfed/compute/modeltest"
)

const readmeContinuation = ", there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball."

func run(t *testing.T, verb func(context.Context, []string, io.Writer, io.Writer) error, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := verb(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), err
}

func TestGenerateReference(t *testing.T) {
	gg := modeltest.Path(t, "stories260K.gguf")
	bin := modeltest.Path(t, "stories260K.bin")
	tok := modeltest.Path(t, "tok512.bin")
	var first string
	for _, args := range [][]string{
		{"--model", gg, "--prompt", "Once upon a time", "--max-tokens", "55", "--temperature", "0"},
		{"--model", gg, "--prompt", "Once upon a time", "--max-tokens", "55", "--shards", "3", "--threads", "2"},
		{"--model", bin, "--tokenizer", tok, "--prompt", "Once upon a time", "--max-tokens", "55", "--shards", "5"},
	} {
		out, stderr, err := run(t, Generate, args...)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if !strings.HasPrefix(out, readmeContinuation) {
			t.Fatalf("%v: stdout %q does not start with the reference continuation", args, out)
		}
		if first == "" {
			first = out
		} else if out != first {
			t.Fatalf("%v: stdout %q differs from %q", args, out, first)
		}
		if !strings.Contains(stderr, "tok/s") {
			t.Fatalf("stderr %q has no tok/s", stderr)
		}
	}
	if _, _, err := run(t, Generate, "--model", bin, "--prompt", "x"); !errors.Is(err, ErrUsage) {
		t.Fatalf("llama2.c model without --tokenizer: %v", err)
	}
}

func TestSynthInfoManifestGenerate(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "q.gguf")
	if _, _, err := run(t, Synth, "--shape", "qwen2-tiny", "--dtype", "q8_0", "--out", out, "--seed", "3"); err != nil {
		t.Fatal(err)
	}
	info, _, err := run(t, Info, out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"architecture  qwen2", "qkv bias      true", "tied output   true", "gpt2", "q8_0", "model id"} {
		if !strings.Contains(info, want) {
			t.Fatalf("info lacks %q:\n%s", want, info)
		}
	}
	man, _, err := run(t, Manifest, out, "--shards", "4")
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.ParseManifest([]byte(man))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Shards) != 4 || !strings.Contains(info, m.IDHex()) {
		t.Fatalf("manifest has %d shards, id %s not in info", len(m.Shards), m.IDHex())
	}
	// the same seed writes the same model id; another seed another id
	out2 := filepath.Join(dir, "q2.gguf")
	run(t, Synth, "--shape", "qwen2-tiny", "--dtype", "q8_0", "--out", out2, "--seed", "3")
	m2, _ := model.ComputeManifest(out2, 0)
	out3 := filepath.Join(dir, "q3.gguf")
	run(t, Synth, "--shape", "qwen2-tiny", "--dtype", "q8_0", "--out", out3, "--seed", "4")
	m3, _ := model.ComputeManifest(out3, 0)
	if m2.ID != m.ID || m3.ID == m.ID {
		t.Fatal("model id is not a function of the content")
	}
	var gens []string
	for _, shards := range []string{"1", "3"} {
		g, _, err := run(t, Generate, "--model", out, "--prompt", "hello world", "--max-tokens", "12",
			"--temperature", "0.8", "--top-p", "0.9", "--seed", "11", "--shards", shards)
		if err != nil {
			t.Fatal(err)
		}
		gens = append(gens, g)
	}
	if gens[0] != gens[1] || len(gens[0]) < 2 {
		t.Fatalf("sampled output differs between 1 and 3 shards: %q vs %q", gens[0], gens[1])
	}
}

func TestUsageErrors(t *testing.T) {
	for _, c := range []struct {
		verb func(context.Context, []string, io.Writer, io.Writer) error
		args []string
	}{
		{Synth, []string{"--shape", "nope", "--out", "x"}},
		{Synth, []string{"--shape", "llama-tiny"}},
		{Manifest, nil},
		{Generate, []string{"--model", "", "--prompt", "x"}},
		{Info, []string{"--bogus"}},
	} {
		if _, _, err := run(t, c.verb, c.args...); err == nil {
			t.Fatalf("%v accepted", c.args)
		}
	}
}
