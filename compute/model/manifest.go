package model

// Model manifest and model id, spec/07-model.md §3–§4.
//
// Text form, one keyword line per field, "\n"-terminated, no blank lines:
//
//	unfed-model-manifest 2
//	arch <llama|qwen2>
//	dim <n>  layers <n>  heads <n>  kv-heads <n>  head-dim <n>  ffn <n>  vocab <n>  context <n>
//	norm-eps <float32, shortest round-trip decimal>
//	rope-theta <float64, shortest round-trip decimal>
//	rope-style <adjacent|neox>
//	qkv-bias <0|1>
//	tied-output <0|1>
//	tensor <name> <type> <dim0>x<dim1>... <sha256 hex of the data>   (sorted by name)
//	model-id <sha256 hex>
//	tokenizer <sha256 hex>                                           (GGUF files; optional)
//	shard <index> <first> <last>                                     (zero or more)
//
// (each hyperparameter on its own line, in the order above). The model id is
// SHA-256 over every line before "model-id", each with its "\n".

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/unfed/unfed/compute/tensor"
)

// Manifest limits (spec/07-model.md §3.3).
const (
	MaxManifestBytes   = 8 << 20
	MaxManifestTensors = 1 << 16
	maxManifestLine    = 1024
)

// manifestMagic names the manifest version. Version 2 (spec/07-model.md §3.2)
// goes with arithmetic version 2 (float products with fused multiply-adds,
// §6.1.1; Q8_0 products on 8-bit activations, §6.1.2):
// a model's id changes with the version, so engines that would compute
// different bits for it never serve, or verify each other under, one id.
const manifestMagic = "unfed-model-manifest 2"

// ErrManifest is wrapped by every manifest parse or verification error.
var ErrManifest = errors.New("model: bad manifest")

// TensorEntry is one tensor in a manifest.
type TensorEntry struct {
	Name string
	Type tensor.DType
	Dims []uint64
	Hash [32]byte // SHA-256 of the tensor's bytes as stored
}

// LayerRange is a shard's contiguous layer range [First, Last).
type LayerRange struct{ First, Last int }

// Manifest describes a model by content: hyperparameters, every tensor's
// name, type, shape and hash, the model id derived from them, and a split of
// the layers into shards.
type Manifest struct {
	Config  Config
	Tensors []TensorEntry // sorted by name
	ID      [32]byte
	// Tokenizer is the hash of the file's tokenizer metadata
	// (TokenizerHash), nil when the file has none (llama2.c). It is not
	// part of the model id, which names the computation; the tensor hash
	// root (Root) covers it.
	Tokenizer *[32]byte
	Shards    []LayerRange
}

// SplitLayers splits n layers into k contiguous ranges whose sizes differ by
// at most one, larger ranges first. k is clamped to [1, n].
func SplitLayers(n, k int) []LayerRange {
	k = max(1, min(k, n))
	out := make([]LayerRange, 0, k)
	first := 0
	for i := 0; i < k; i++ {
		size := n / k
		if i < n%k {
			size++
		}
		out = append(out, LayerRange{first, first + size})
		first += size
	}
	return out
}

// ComputeManifest hashes every tensor of the model file at path and returns
// its manifest with a split into shards ranges (0: no split listed).
func ComputeManifest(path string, shards int) (*Manifest, error) {
	src, err := openSource(path)
	if err != nil {
		return nil, err
	}
	defer src.close()
	if err := src.cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Manifest{Config: src.cfg}
	for _, name := range src.names {
		t, ok := src.get(name)
		if !ok {
			return nil, fmt.Errorf("model: tensor %s has no data", name)
		}
		m.Tensors = append(m.Tensors, TensorEntry{Name: name, Type: t.Type, Dims: append([]uint64(nil), t.Dims...),
			Hash: sha256.Sum256(t.Data)})
	}
	sort.Slice(m.Tensors, func(i, j int) bool { return m.Tensors[i].Name < m.Tensors[j].Name })
	m.ID = m.computeID()
	if src.gguf != nil {
		h, ok, err := TokenizerHash(src.gguf)
		if err != nil {
			return nil, err
		}
		if ok {
			m.Tokenizer = &h
		}
	}
	if shards > 0 {
		m.Shards = SplitLayers(src.cfg.NLayers, shards)
	}
	return m, nil
}

// IDHex returns the model id in lowercase hex.
func (m *Manifest) IDHex() string { return hex.EncodeToString(m.ID[:]) }

func (m *Manifest) identityLines() []string {
	c := m.Config
	b := func(v bool) string {
		if v {
			return "1"
		}
		return "0"
	}
	lines := []string{
		manifestMagic,
		"arch " + c.Arch,
		"dim " + strconv.Itoa(c.Dim),
		"layers " + strconv.Itoa(c.NLayers),
		"heads " + strconv.Itoa(c.NHeads),
		"kv-heads " + strconv.Itoa(c.NKVHeads),
		"head-dim " + strconv.Itoa(c.HeadDim),
		"ffn " + strconv.Itoa(c.FFNDim),
		"vocab " + strconv.Itoa(c.Vocab),
		"context " + strconv.Itoa(c.ContextLength),
		"norm-eps " + strconv.FormatFloat(float64(c.NormEps), 'g', -1, 32),
		"rope-theta " + strconv.FormatFloat(c.RopeTheta, 'g', -1, 64),
		"rope-style " + c.RopeStyle.String(),
		"qkv-bias " + b(c.QKVBias),
		"tied-output " + b(c.TiedOutput),
	}
	for _, t := range m.Tensors {
		dims := make([]string, len(t.Dims))
		for i, d := range t.Dims {
			dims[i] = strconv.FormatUint(d, 10)
		}
		lines = append(lines, fmt.Sprintf("tensor %s %s %s %s", t.Name, t.Type, strings.Join(dims, "x"), hex.EncodeToString(t.Hash[:])))
	}
	return lines
}

func (m *Manifest) computeID() [32]byte {
	h := sha256.New()
	for _, l := range m.identityLines() {
		h.Write([]byte(l))
		h.Write([]byte{'\n'})
	}
	var id [32]byte
	h.Sum(id[:0])
	return id
}

// Encode returns the manifest's text form.
func (m *Manifest) Encode() []byte {
	var sb strings.Builder
	for _, l := range m.identityLines() {
		sb.WriteString(l)
		sb.WriteByte('\n')
	}
	fmt.Fprintf(&sb, "model-id %s\n", m.IDHex())
	if m.Tokenizer != nil {
		fmt.Fprintf(&sb, "tokenizer %s\n", hex.EncodeToString(m.Tokenizer[:]))
	}
	for i, s := range m.Shards {
		fmt.Fprintf(&sb, "shard %d %d %d\n", i, s.First, s.Last)
	}
	return []byte(sb.String())
}

// ParseManifest parses and checks a manifest's text form: every field is
// validated, tensors must be sorted and unique, the model id must match the
// content and the shard ranges must tile [0, layers) in order.
func ParseManifest(b []byte) (*Manifest, error) {
	if len(b) > MaxManifestBytes {
		return nil, fmt.Errorf("%w: %d bytes", ErrManifest, len(b))
	}
	if len(b) == 0 || b[len(b)-1] != '\n' {
		return nil, fmt.Errorf("%w: must end with a newline", ErrManifest)
	}
	lines := strings.Split(string(b[:len(b)-1]), "\n")
	for i, l := range lines {
		if len(l) > maxManifestLine {
			return nil, fmt.Errorf("%w: line %d too long", ErrManifest, i+1)
		}
		for j := 0; j < len(l); j++ {
			if l[j] < 0x20 || l[j] > 0x7e {
				return nil, fmt.Errorf("%w: line %d: byte 0x%02x", ErrManifest, i+1, l[j])
			}
		}
	}
	if len(lines) < 16 || lines[0] != manifestMagic {
		return nil, fmt.Errorf("%w: missing %q header", ErrManifest, manifestMagic)
	}
	m := &Manifest{}
	c := &m.Config
	ln := 1
	field := func(key string) (string, error) {
		if ln >= len(lines) {
			return "", fmt.Errorf("%w: missing %s", ErrManifest, key)
		}
		v, ok := strings.CutPrefix(lines[ln], key+" ")
		if !ok || v == "" {
			return "", fmt.Errorf("%w: line %d: want %s", ErrManifest, ln+1, key)
		}
		ln++
		return v, nil
	}
	intField := func(key string, dst *int) error {
		v, err := field(key)
		if err != nil {
			return err
		}
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || strconv.Itoa(n) != v {
			return fmt.Errorf("%w: %s %q", ErrManifest, key, v)
		}
		*dst = n
		return nil
	}
	boolField := func(key string, dst *bool) error {
		v, err := field(key)
		if err != nil {
			return err
		}
		if v != "0" && v != "1" {
			return fmt.Errorf("%w: %s %q", ErrManifest, key, v)
		}
		*dst = v == "1"
		return nil
	}
	var err error
	if c.Arch, err = field("arch"); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		k string
		d *int
	}{{"dim", &c.Dim}, {"layers", &c.NLayers}, {"heads", &c.NHeads}, {"kv-heads", &c.NKVHeads},
		{"head-dim", &c.HeadDim}, {"ffn", &c.FFNDim}, {"vocab", &c.Vocab}, {"context", &c.ContextLength}} {
		if err := intField(f.k, f.d); err != nil {
			return nil, err
		}
	}
	v, err := field("norm-eps")
	if err != nil {
		return nil, err
	}
	eps, err := strconv.ParseFloat(v, 32)
	if err != nil {
		return nil, fmt.Errorf("%w: norm-eps %q", ErrManifest, v)
	}
	c.NormEps = float32(eps)
	if v, err = field("rope-theta"); err != nil {
		return nil, err
	}
	if c.RopeTheta, err = strconv.ParseFloat(v, 64); err != nil {
		return nil, fmt.Errorf("%w: rope-theta %q", ErrManifest, v)
	}
	if v, err = field("rope-style"); err != nil {
		return nil, err
	}
	switch v {
	case "adjacent":
		c.RopeStyle = RopeAdjacent
	case "neox":
		c.RopeStyle = RopeNeox
	default:
		return nil, fmt.Errorf("%w: rope-style %q", ErrManifest, v)
	}
	if err := boolField("qkv-bias", &c.QKVBias); err != nil {
		return nil, err
	}
	if err := boolField("tied-output", &c.TiedOutput); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrManifest, err)
	}
	for ln < len(lines) && strings.HasPrefix(lines[ln], "tensor ") {
		if len(m.Tensors) >= MaxManifestTensors {
			return nil, fmt.Errorf("%w: more than %d tensors", ErrManifest, MaxManifestTensors)
		}
		t, err := parseTensorLine(lines[ln])
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %w", ErrManifest, ln+1, err)
		}
		if n := len(m.Tensors); n > 0 && m.Tensors[n-1].Name >= t.Name {
			return nil, fmt.Errorf("%w: line %d: tensors not sorted or duplicated", ErrManifest, ln+1)
		}
		m.Tensors = append(m.Tensors, t)
		ln++
	}
	v, err = field("model-id")
	if err != nil {
		return nil, err
	}
	id, err := hex.DecodeString(v)
	if err != nil || len(id) != 32 || hex.EncodeToString(id) != v {
		return nil, fmt.Errorf("%w: model-id %q", ErrManifest, v)
	}
	copy(m.ID[:], id)
	if m.computeID() != m.ID {
		return nil, fmt.Errorf("%w: model-id does not match the content", ErrManifest)
	}
	if ln < len(lines) && strings.HasPrefix(lines[ln], "tokenizer ") {
		v, _ := field("tokenizer")
		h, err := hex.DecodeString(v)
		if err != nil || len(h) != 32 || hex.EncodeToString(h) != v {
			return nil, fmt.Errorf("%w: tokenizer %q", ErrManifest, v)
		}
		m.Tokenizer = new([32]byte)
		copy(m.Tokenizer[:], h)
	}
	next := 0
	for ; ln < len(lines); ln++ {
		f := strings.Split(lines[ln], " ")
		if len(f) != 4 || f[0] != "shard" {
			return nil, fmt.Errorf("%w: line %d: want shard", ErrManifest, ln+1)
		}
		var nums [3]int
		for i := range nums {
			n, err := strconv.Atoi(f[i+1])
			if err != nil || n < 0 || strconv.Itoa(n) != f[i+1] {
				return nil, fmt.Errorf("%w: line %d: bad number %q", ErrManifest, ln+1, f[i+1])
			}
			nums[i] = n
		}
		if nums[0] != len(m.Shards) || nums[1] != next || nums[2] <= nums[1] || nums[2] > c.NLayers {
			return nil, fmt.Errorf("%w: line %d: shard ranges must tile the layers in order", ErrManifest, ln+1)
		}
		m.Shards = append(m.Shards, LayerRange{nums[1], nums[2]})
		next = nums[2]
	}
	if len(m.Shards) > 0 && next != c.NLayers {
		return nil, fmt.Errorf("%w: shards end at layer %d of %d", ErrManifest, next, c.NLayers)
	}
	return m, nil
}

func parseTensorLine(l string) (TensorEntry, error) {
	f := strings.Split(l, " ")
	var t TensorEntry
	if len(f) != 5 || f[1] == "" {
		return t, errors.New("want tensor NAME TYPE DIMS HASH")
	}
	t.Name = f[1]
	typ, err := tensor.ParseDType(f[2])
	if err != nil {
		// Types the engine cannot compute with may still be listed by name.
		n, ok := strings.CutPrefix(f[2], "type")
		v, perr := strconv.ParseUint(n, 10, 32)
		if !ok || perr != nil {
			return t, fmt.Errorf("type %q", f[2])
		}
		typ = tensor.DType(v)
	}
	t.Type = typ
	ds := strings.Split(f[3], "x")
	if len(ds) > 4 {
		return t, fmt.Errorf("%d dimensions", len(ds))
	}
	for _, d := range ds {
		v, err := strconv.ParseUint(d, 10, 64)
		if err != nil || v == 0 || v > 1<<40 || strconv.FormatUint(v, 10) != d {
			return t, fmt.Errorf("dimension %q", d)
		}
		t.Dims = append(t.Dims, v)
	}
	h, err := hex.DecodeString(f[4])
	if err != nil || len(h) != 32 || hex.EncodeToString(h) != f[4] {
		return t, fmt.Errorf("hash %q", f[4])
	}
	copy(t.Hash[:], h)
	return t, nil
}

// ShardTensorNames lists the tensors a shard [first, last) loads, which are
// the tensors whose hashes it must check.
func ShardTensorNames(cfg Config, first, last int) []string {
	var names []string
	if first == 0 {
		names = append(names, nameEmbedding)
	}
	for l := first; l < last; l++ {
		names = append(names, layerTensorNames(cfg, l)...)
	}
	if last == cfg.NLayers {
		names = append(names, nameOutNorm)
		if cfg.TiedOutput {
			if first != 0 {
				names = append(names, nameEmbedding)
			}
		} else {
			names = append(names, nameOutput)
		}
	}
	return names
}

// VerifyShard checks that the model file at path holds, for the layer range
// [first, last), exactly the tensors the manifest lists (type, shape and
// SHA-256), and that its hyperparameters match. It reads only those tensors.
func (m *Manifest) VerifyShard(path string, first, last int) error {
	src, err := openSource(path)
	if err != nil {
		return err
	}
	defer src.close()
	if src.cfg != m.Config {
		return fmt.Errorf("%w: hyperparameters of %s differ from the manifest", ErrManifest, path)
	}
	if first < 0 || first >= last || last > m.Config.NLayers {
		return fmt.Errorf("%w: layer range [%d, %d)", ErrManifest, first, last)
	}
	for _, name := range ShardTensorNames(m.Config, first, last) {
		i := sort.Search(len(m.Tensors), func(i int) bool { return m.Tensors[i].Name >= name })
		if i == len(m.Tensors) || m.Tensors[i].Name != name {
			return fmt.Errorf("%w: tensor %s is not listed", ErrManifest, name)
		}
		want := m.Tensors[i]
		t, ok := src.get(name)
		if !ok {
			return fmt.Errorf("%w: tensor %s missing from %s", ErrManifest, name, path)
		}
		if t.Type != want.Type || fmt.Sprint(t.Dims) != fmt.Sprint(want.Dims) || sha256.Sum256(t.Data) != want.Hash {
			return fmt.Errorf("%w: tensor %s of %s differs from the manifest", ErrManifest, name, path)
		}
	}
	return nil
}
