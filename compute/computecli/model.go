package computecli

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/unfed/unfed/compute/gguf"
	"github.com/unfed/unfed/compute/model"
	"github.com/unfed/unfed/compute/synth"
	"github.com/unfed/unfed/compute/tensor"
	"github.com/unfed/unfed/compute/tokenizer"
)

// Info implements "unfed model info FILE": format, architecture, shapes,
// tensor types, tokenizer and model id.
func Info(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("model info", "[flags] FILE", stderr)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: model info FILE", ErrUsage)
	}
	path, err := ResolveModelPath(pos[0])
	if err != nil {
		return err
	}
	m, err := model.ComputeManifest(path, 0)
	if err != nil {
		return err
	}
	format, _ := model.DetectFormat(path)
	c := m.Config
	w := &errWriter{w: stdout}
	w.printf("file          %s\n", path)
	w.printf("format        %s\n", format)
	w.printf("architecture  %s\n", c.Arch)
	w.printf("dim           %d\nlayers        %d\nheads         %d (kv %d, head dim %d)\n", c.Dim, c.NLayers, c.NHeads, c.NKVHeads, c.HeadDim)
	w.printf("ffn           %d\nvocab         %d\ncontext       %d\n", c.FFNDim, c.Vocab, c.ContextLength)
	w.printf("norm eps      %g\nrope          base %g, %s pairs\n", c.NormEps, c.RopeTheta, c.RopeStyle)
	w.printf("qkv bias      %v\ntied output   %v\n", c.QKVBias, c.TiedOutput)
	types := map[string]int{}
	var params uint64
	for _, t := range m.Tensors {
		types[t.Type.String()]++
		n := uint64(1)
		for _, d := range t.Dims {
			n *= d
		}
		params += n
	}
	var ts []string
	for k, v := range types {
		ts = append(ts, fmt.Sprintf("%s×%d", k, v))
	}
	sort.Strings(ts)
	w.printf("tensors       %d (%s), %d parameters\n", len(m.Tensors), strings.Join(ts, " "), params)
	if format == model.FormatGGUF {
		if f, err := gguf.Open(path); err == nil {
			if tok, err := tokenizer.FromGGUF(f); err == nil {
				w.printf("tokenizer     %s, %d tokens, bos %d, eos %d\n", tok.Kind(), tok.VocabSize(), tok.BOS(), tok.EOS())
			} else {
				w.printf("tokenizer     none (%v)\n", err)
			}
			f.Close()
		}
	} else {
		w.printf("tokenizer     separate file (llama2.c tokenizer.bin)\n")
	}
	w.printf("model id      %s\n", m.IDHex())
	if m.Tokenizer != nil {
		root := m.Root()
		w.printf("hash root     %s (the catalog's tensor_hash_root: clients verify bundles against it)\n", hex.EncodeToString(root[:]))
	}
	return w.err
}

// Bundle implements "unfed model bundle FILE --out DIR|FILE": the client
// bundle of a GGUF model (spec/06-model-files.md §5), written to FILE, or
// to DIR/<model id>.bundle.gguf when --out is a directory.
func Bundle(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("model bundle", "FILE --out DIR|FILE", stderr)
	out := fs.String("out", "", "write the bundle to `DIR` (as <model id>.bundle.gguf) or to this file")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *out == "" {
		return fmt.Errorf("%w: model bundle FILE --out DIR|FILE", ErrUsage)
	}
	path, err := ResolveModelPath(pos[0])
	if err != nil {
		return err
	}
	dst := *out
	toDir := false
	if fi, err := os.Stat(dst); err == nil && fi.IsDir() {
		toDir = true
	}
	dir := filepath.Dir(dst)
	if toDir {
		dir = dst
	}
	tmp, err := os.CreateTemp(dir, ".bundle-*")
	if err != nil {
		return fmt.Errorf("computecli: %w", err)
	}
	defer os.Remove(tmp.Name())
	man, err := model.WriteBundle(path, tmp)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if toDir {
		dst = filepath.Join(dst, man.IDHex()+".bundle.gguf")
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("computecli: %w", err)
	}
	bi, _ := os.Stat(dst)
	mi, _ := os.Stat(path)
	root := man.Root()
	_, err = fmt.Fprintf(stdout, "bundle %s model-id %s root %s bytes %d model-bytes %d (%.1f%%)\n", dst, man.IDHex(),
		hex.EncodeToString(root[:]), bi.Size(), mi.Size(), 100*float64(bi.Size())/float64(mi.Size()))
	return err
}

// Manifest implements "unfed model manifest FILE --shards N".
func Manifest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("model manifest", "[flags] FILE", stderr)
	shards := fs.Int("shards", 1, "split the layers into `N` contiguous shards")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *shards < 1 {
		return fmt.Errorf("%w: model manifest FILE --shards N (N >= 1)", ErrUsage)
	}
	path, err := ResolveModelPath(pos[0])
	if err != nil {
		return err
	}
	m, err := model.ComputeManifest(path, *shards)
	if err != nil {
		return err
	}
	if *shards > m.Config.NLayers {
		return fmt.Errorf("%w: %d shards for %d layers", ErrUsage, *shards, m.Config.NLayers)
	}
	_, err = stdout.Write(m.Encode())
	return err
}

// Synth implements "unfed model synth".
func Synth(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("model synth", "--shape NAME --dtype f32|f16|q8_0|bf16 --out FILE.gguf [flags]", stderr)
	shape := fs.String("shape", "", "model shape: "+strings.Join(synth.ShapeNames(), ", "))
	dtype := fs.String("dtype", "f32", "weight type: f32, f16, bf16 or q8_0")
	out := fs.String("out", "", "output `FILE.gguf`")
	seed := fs.Uint64("seed", 1, "random seed")
	tokFrom := fs.String("tokenizer-from", "", "copy the llama tokenizer of this GGUF `FILE` (llama shapes)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	sh, ok := synth.Shapes[*shape]
	if len(pos) != 0 || !ok || *out == "" {
		return fmt.Errorf("%w: model synth --shape %s --dtype f32|f16|bf16|q8_0 --out FILE.gguf [--seed S]",
			ErrUsage, strings.Join(synth.ShapeNames(), "|"))
	}
	dt, err := tensor.ParseDType(*dtype)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUsage, err)
	}
	opts := synth.Options{Shape: sh, DType: dt, Seed: *seed}
	if *tokFrom != "" {
		if opts.TokenizerFrom, err = ResolveModelPath(*tokFrom); err != nil {
			return err
		}
	}
	if err := synth.WriteFile(*out, opts); err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "wrote %s (%s, %s, seed %d)\n", *out, sh.Name, dt, *seed)
	return err
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, a ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, a...)
	}
}
