package model

// Client bundles (spec/06-model-files.md §5): what a client needs of a model
// to embed its tokens, apply the final norm and output head and decode, and
// nothing else: a GGUF file with the model's hyperparameter and tokenizer
// metadata, the embedding, the final norm and the output head (as stored,
// so their hashes are the manifest's), and the model's manifest, whose
// tensor hash root (Root) the consensus catalog publishes. OpenBundle
// accepts a bundle only when every byte it uses is bound to that manifest.

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/unfed/unfed/compute/gguf"
)

// Bundle metadata keys (spec/06 §5.1).
const (
	BundleVersionKey  = "unfed.bundle.version"
	BundleManifestKey = "unfed.bundle.manifest"
	bundleVersion     = 1
)

// ErrBundle is wrapped by every bundle verification error.
var ErrBundle = errors.New("model: bundle does not verify")

// TokenizerHash returns the SHA-256 of f's tokenizer (spec/06 §5.2): of the
// GGUF version 3 file, as gguf.Writer encodes it, that holds only f's
// "tokenizer." metadata pairs, sorted by key, and no tensors. ok is false
// when f has no tokenizer.ggml.model.
func TokenizerHash(f *gguf.File) (h [32]byte, ok bool, err error) {
	if _, has := f.Get("tokenizer.ggml.model"); !has {
		return h, false, nil
	}
	var kvs []gguf.KV
	for _, kv := range f.KV {
		if strings.HasPrefix(kv.Key, "tokenizer.") {
			kvs = append(kvs, kv)
		}
	}
	sort.Slice(kvs, func(i, j int) bool { return kvs[i].Key < kvs[j].Key })
	w := gguf.NewWriter()
	for _, kv := range kvs {
		w.Add(kv.Key, kv.Value)
	}
	d := sha256.New()
	if _, err := w.WriteTo(d); err != nil {
		return h, false, fmt.Errorf("model: tokenizer hash: %w", err)
	}
	d.Sum(h[:0])
	return h, true, nil
}

// Root returns the tensor hash root of the model (spec/06 §5.2): SHA-256
// of the manifest's text without its shard lines. It commits to the model
// id, so to every tensor and hyperparameter, and to the tokenizer line.
func (m *Manifest) Root() [32]byte {
	c := *m
	c.Shards = nil
	return sha256.Sum256(c.Encode())
}

// BundleTensorNames lists the tensors of a bundle, in file order: the
// embedding, the final norm, and the output head unless it is tied.
func BundleTensorNames(cfg Config) []string {
	names := []string{nameEmbedding, nameOutNorm}
	if !cfg.TiedOutput {
		names = append(names, nameOutput)
	}
	return names
}

// bundleKey reports whether a metadata key may appear in a bundle of
// architecture arch.
func bundleKey(key, arch string) bool {
	return key == "general.architecture" || key == "general.alignment" || strings.HasPrefix(key, arch+".") ||
		strings.HasPrefix(key, "tokenizer.") || key == BundleVersionKey || key == BundleManifestKey
}

// WriteBundle writes the bundle of the GGUF model file at path to w and
// returns the model's manifest (without shards).
func WriteBundle(path string, w io.Writer) (*Manifest, error) {
	man, err := ComputeManifest(path, 0)
	if err != nil {
		return nil, err
	}
	if man.Tokenizer == nil {
		return nil, fmt.Errorf("model: %s has no tokenizer metadata: bundles are made from GGUF files with their tokenizer", path)
	}
	src, err := openSource(path)
	if err != nil {
		return nil, err
	}
	defer src.close()
	if src.gguf == nil {
		return nil, fmt.Errorf("model: %s: bundles are made from GGUF files", path)
	}
	gw := gguf.NewWriter()
	for _, kv := range src.gguf.KV {
		if bundleKey(kv.Key, man.Config.Arch) && !strings.HasPrefix(kv.Key, "unfed.") {
			gw.Add(kv.Key, kv.Value)
		}
	}
	gw.AddUint32(BundleVersionKey, bundleVersion)
	gw.AddString(BundleManifestKey, string(man.Encode()))
	for _, name := range BundleTensorNames(man.Config) {
		t, ok := src.get(name)
		if !ok {
			return nil, fmt.Errorf("model: tensor %s missing from %s", name, path)
		}
		if err := gw.AddTensor(name, gguf.Type(t.Type), t.Dims, t.Data); err != nil {
			return nil, fmt.Errorf("model: %w", err)
		}
	}
	if _, err := gw.WriteTo(w); err != nil {
		return nil, fmt.Errorf("model: write bundle: %w", err)
	}
	return man, nil
}

// BundleBytes returns the bundle of the GGUF model file at path in memory.
func BundleBytes(path string) ([]byte, *Manifest, error) {
	var b bytes.Buffer
	man, err := WriteBundle(path, &b)
	if err != nil {
		return nil, nil, err
	}
	return b.Bytes(), man, nil
}

// OpenBundle opens and verifies the bundle at path (spec/06 §5.3): its
// manifest parses; every metadata key is one a bundle may hold; its
// tokenizer metadata hashes to the manifest's tokenizer line; it holds
// exactly the bundle's tensors, each with the type, shape and SHA-256 the
// manifest lists; and its hyperparameters are the manifest's. The caller
// must still check the manifest against the catalog (Root and ID). The
// returned Ends keep the file open; Ends.GGUF gives its metadata.
func OpenBundle(path string) (*Manifest, *Ends, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrBundle, err)
	}
	man, err := verifyBundle(f)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	src, err := ggufSource(f)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%w: %w", ErrBundle, err)
	}
	// A mapping, as a model file's: the head's pages (faulted in by the
	// verification above) go as it is packed, so they are resident once.
	src.mapped = fileMapped
	// A bundle holds no layer, so what the file says of per-layer
	// tensors (QKV biases) is the manifest's word.
	src.cfg.QKVBias = man.Config.QKVBias
	if src.cfg != man.Config {
		f.Close()
		return nil, nil, fmt.Errorf("%w: hyperparameters differ from the manifest", ErrBundle)
	}
	e, err := loadEnds(src)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%w: %w", ErrBundle, err)
	}
	return man, e, nil
}

func verifyBundle(f *gguf.File) (*Manifest, error) {
	if v, err := f.Uint(BundleVersionKey); err != nil || v != bundleVersion {
		return nil, fmt.Errorf("%w: not a version %d bundle", ErrBundle, bundleVersion)
	}
	text, err := f.String(BundleManifestKey)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBundle, err)
	}
	man, err := ParseManifest([]byte(text))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBundle, err)
	}
	for _, kv := range f.KV {
		if !bundleKey(kv.Key, man.Config.Arch) {
			return nil, fmt.Errorf("%w: metadata key %.64q has no place in a bundle", ErrBundle, kv.Key)
		}
	}
	th, ok, err := TokenizerHash(f)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrBundle, err)
	case !ok || man.Tokenizer == nil:
		return nil, fmt.Errorf("%w: no tokenizer, or a manifest without a tokenizer line", ErrBundle)
	case th != *man.Tokenizer:
		return nil, fmt.Errorf("%w: tokenizer metadata differs from the manifest's tokenizer hash", ErrBundle)
	}
	names := BundleTensorNames(man.Config)
	if len(f.Tensors) != len(names) {
		return nil, fmt.Errorf("%w: %d tensors, want %d", ErrBundle, len(f.Tensors), len(names))
	}
	for _, name := range names {
		i := sort.Search(len(man.Tensors), func(i int) bool { return man.Tensors[i].Name >= name })
		if i == len(man.Tensors) || man.Tensors[i].Name != name {
			return nil, fmt.Errorf("%w: tensor %s is not in the manifest", ErrBundle, name)
		}
		want := man.Tensors[i]
		ti, ok := f.Tensor(name)
		if !ok {
			return nil, fmt.Errorf("%w: tensor %s missing", ErrBundle, name)
		}
		data := f.TensorData(ti)
		if uint32(ti.Type) != uint32(want.Type) || fmt.Sprint(ti.Dims) != fmt.Sprint(want.Dims) || sha256.Sum256(data) != want.Hash {
			return nil, fmt.Errorf("%w: tensor %s differs from the manifest", ErrBundle, name)
		}
	}
	return man, nil
}

// GGUF returns the GGUF file the ends were loaded from (a model file or a
// bundle), nil for llama2.c checkpoints. It stays valid until Close.
func (e *Ends) GGUF() *gguf.File { return e.src.gguf }
