package gguf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
)

// Limits on what a file can make us allocate or accept (spec §2.6). Every
// count is also checked against the bytes that remain before allocating.
const (
	MaxKeyLen        = 4096     // bytes in a metadata key or tensor name
	MaxStringLen     = 64 << 20 // bytes in one string value
	MaxArrayLen      = 1 << 26  // elements in one array value
	MaxDims          = 4        // dimensions of a tensor (GGML_MAX_DIMS)
	MaxAlignment     = 1 << 20  // largest accepted general.alignment
	DefaultAlignment = 32
)

const magic = "GGUF"

// ErrUnsupportedVersion reports a GGUF version other than 2 or 3.
var ErrUnsupportedVersion = errors.New("gguf: unsupported version")

// TensorInfo describes one tensor of the file.
type TensorInfo struct {
	Name   string
	Dims   []uint64 // ggml order: Dims[0] is the fastest-varying (row length)
	Type   Type
	Offset uint64 // relative to the data section
	Size   uint64 // bytes, computed from Dims and Type
}

// Elements returns the number of elements (product of Dims).
func (t *TensorInfo) Elements() uint64 {
	n := uint64(1)
	for _, d := range t.Dims {
		n *= d // bounded at parse time
	}
	return n
}

// KV is one metadata pair.
type KV struct {
	Key   string
	Value Value
}

// File is a parsed GGUF file. Its methods are safe for concurrent use except
// Close, which must not race with TensorData.
type File struct {
	Version   uint32
	Alignment uint64
	KV        []KV         // file order
	Tensors   []TensorInfo // file order

	DataOffset uint64 // absolute offset of the data section in the file

	data    []byte // the whole file image (mapping or caller's slice)
	unmap   func([]byte) error
	kvIndex map[string]int
	tIndex  map[string]int
}

// cursor reads little-endian fields from b with bounds checks.
type cursor struct {
	b   []byte
	off int
}

func (c *cursor) remaining() int { return len(c.b) - c.off }

func (c *cursor) take(n int, what string) ([]byte, error) {
	if n < 0 || n > c.remaining() {
		return nil, fmt.Errorf("gguf: truncated %s at offset %d", what, c.off)
	}
	p := c.b[c.off : c.off+n : c.off+n]
	c.off += n
	return p, nil
}

func (c *cursor) u32(what string) (uint32, error) {
	p, err := c.take(4, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(p), nil
}

func (c *cursor) u64(what string) (uint64, error) {
	p, err := c.take(8, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(p), nil
}

func (c *cursor) str(what string, limit int) (string, error) {
	n, err := c.u64(what + " length")
	if err != nil {
		return "", err
	}
	if n > uint64(limit) {
		return "", fmt.Errorf("gguf: %s length %d exceeds limit %d", what, n, limit)
	}
	p, err := c.take(int(n), what)
	if err != nil {
		return "", err
	}
	return string(p), nil
}

// Parse checks and indexes an in-memory GGUF image. The returned File keeps
// references into data (TensorData returns sub-slices of it).
func Parse(data []byte) (*File, error) {
	c := &cursor{b: data}
	m, err := c.take(4, "magic")
	if err != nil {
		return nil, err
	}
	if string(m) != magic {
		return nil, fmt.Errorf("gguf: bad magic %q", m)
	}
	f := &File{data: data}
	if f.Version, err = c.u32("version"); err != nil {
		return nil, err
	}
	switch {
	case f.Version == 1:
		return nil, fmt.Errorf("gguf: version 1 is unsupported: %w", ErrUnsupportedVersion)
	case f.Version&0xffff == 0 && bits.ReverseBytes32(f.Version)-1 < 3: // 1..3 byte-swapped
		return nil, errors.New("gguf: big-endian files are unsupported")
	case f.Version != 2 && f.Version != 3:
		return nil, fmt.Errorf("gguf: version %d: %w", f.Version, ErrUnsupportedVersion)
	}
	nTensors, err := c.u64("tensor count")
	if err != nil {
		return nil, err
	}
	nKV, err := c.u64("kv count")
	if err != nil {
		return nil, err
	}
	// A kv pair takes at least 8+4+1 bytes, a tensor descriptor 8+4+8+4+8.
	if nKV > uint64(c.remaining()/13) {
		return nil, fmt.Errorf("gguf: kv count %d exceeds what the file can hold", nKV)
	}
	if nTensors > uint64(c.remaining()/32) {
		return nil, fmt.Errorf("gguf: tensor count %d exceeds what the file can hold", nTensors)
	}
	if err := f.parseKV(c, int(nKV)); err != nil {
		return nil, err
	}
	if err := f.parseAlignment(); err != nil {
		return nil, err
	}
	if err := f.parseTensors(c, int(nTensors)); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *File) parseKV(c *cursor, n int) error {
	f.KV = make([]KV, 0, n)
	f.kvIndex = make(map[string]int, n)
	for i := 0; i < n; i++ {
		key, err := c.str("kv key", MaxKeyLen)
		if err != nil {
			return err
		}
		if _, dup := f.kvIndex[key]; dup {
			return fmt.Errorf("gguf: duplicate key %q", key)
		}
		t, err := c.u32("kv type")
		if err != nil {
			return err
		}
		v, err := readValue(c, ValueType(t), true)
		if err != nil {
			return fmt.Errorf("%w (key %q)", err, key)
		}
		f.kvIndex[key] = len(f.KV)
		f.KV = append(f.KV, KV{Key: key, Value: v})
	}
	return nil
}

func readValue(c *cursor, t ValueType, arrayOK bool) (Value, error) {
	v := Value{typ: t, ok: true}
	switch {
	case t == ValueString:
		s, err := c.str("string value", MaxStringLen)
		if err != nil {
			return Value{}, err
		}
		v.str = s
	case t == ValueArray && arrayOK:
		et, err := c.u32("array type")
		if err != nil {
			return Value{}, err
		}
		return readArray(c, ValueType(et))
	case t.scalarSize() > 0:
		p, err := c.take(t.scalarSize(), "value")
		if err != nil {
			return Value{}, err
		}
		v.num = decodeScalar(t, p)
		if t == ValueBool && v.num > 1 {
			return Value{}, fmt.Errorf("gguf: bool value %d is not 0 or 1", v.num)
		}
	default:
		return Value{}, fmt.Errorf("gguf: unsupported value type %v", t)
	}
	return v, nil
}

func readArray(c *cursor, et ValueType) (Value, error) {
	n, err := c.u64("array length")
	if err != nil {
		return Value{}, err
	}
	if n > MaxArrayLen {
		return Value{}, fmt.Errorf("gguf: array length %d exceeds limit %d", n, MaxArrayLen)
	}
	v := Value{typ: ValueArray, elem: et, n: int(n), ok: true}
	switch {
	case et == ValueString:
		if n > uint64(c.remaining()/8) {
			return Value{}, fmt.Errorf("gguf: array length %d exceeds what the file can hold", n)
		}
		v.strs = make([]string, n)
		for i := range v.strs {
			if v.strs[i], err = c.str("array string", MaxStringLen); err != nil {
				return Value{}, err
			}
		}
	case et.scalarSize() > 0:
		sz := et.scalarSize()
		if n > uint64(c.remaining()/sz) {
			return Value{}, fmt.Errorf("gguf: array length %d exceeds what the file can hold", n)
		}
		p, _ := c.take(int(n)*sz, "array")
		if et == ValueBool {
			for _, b := range p {
				if b > 1 {
					return Value{}, fmt.Errorf("gguf: bool value %d is not 0 or 1", b)
				}
			}
		}
		v.raw = append([]byte(nil), p...)
	case et == ValueArray:
		return Value{}, errors.New("gguf: nested arrays are unsupported")
	default:
		return Value{}, fmt.Errorf("gguf: unsupported array element type %v", et)
	}
	return v, nil
}

func (f *File) parseAlignment() error {
	f.Alignment = DefaultAlignment
	v, ok := f.Get("general.alignment")
	if !ok {
		return nil
	}
	a, ok := v.AsUint()
	if !ok || a == 0 || a > MaxAlignment || a&(a-1) != 0 {
		return fmt.Errorf("gguf: general.alignment %v is not a power of two up to %d", v, MaxAlignment)
	}
	f.Alignment = a
	return nil
}

func (f *File) parseTensors(c *cursor, n int) error {
	f.Tensors = make([]TensorInfo, 0, n)
	f.tIndex = make(map[string]int, n)
	for i := 0; i < n; i++ {
		var t TensorInfo
		var err error
		if t.Name, err = c.str("tensor name", MaxKeyLen); err != nil {
			return err
		}
		if _, dup := f.tIndex[t.Name]; dup {
			return fmt.Errorf("gguf: duplicate tensor %q", t.Name)
		}
		nd, err := c.u32("tensor dims")
		if err != nil {
			return err
		}
		if nd == 0 || nd > MaxDims {
			return fmt.Errorf("gguf: tensor %q has %d dimensions (1..%d)", t.Name, nd, MaxDims)
		}
		t.Dims = make([]uint64, nd)
		elems := uint64(1)
		for j := range t.Dims {
			if t.Dims[j], err = c.u64("tensor dim"); err != nil {
				return err
			}
			if t.Dims[j] > math.MaxInt64 {
				return fmt.Errorf("gguf: tensor %q dimension %d too large", t.Name, t.Dims[j])
			}
			hi, lo := bits.Mul64(elems, t.Dims[j])
			if hi != 0 || lo > math.MaxInt64 {
				return fmt.Errorf("gguf: tensor %q element count overflows", t.Name)
			}
			elems = lo
		}
		ty, err := c.u32("tensor type")
		if err != nil {
			return err
		}
		t.Type = Type(ty)
		if !t.Type.Sizable() {
			return fmt.Errorf("gguf: tensor %q has unsupported type %v", t.Name, t.Type)
		}
		if t.Dims[0]%t.Type.BlockSize() != 0 {
			return fmt.Errorf("gguf: tensor %q row length %d is not a multiple of the %v block size %d",
				t.Name, t.Dims[0], t.Type, t.Type.BlockSize())
		}
		if t.Size, err = t.Type.RowSize(elems); err != nil {
			return fmt.Errorf("%w (tensor %q)", err, t.Name)
		}
		if t.Offset, err = c.u64("tensor offset"); err != nil {
			return err
		}
		if t.Offset%f.Alignment != 0 {
			return fmt.Errorf("gguf: tensor %q offset %d is not aligned to %d", t.Name, t.Offset, f.Alignment)
		}
		f.tIndex[t.Name] = len(f.Tensors)
		f.Tensors = append(f.Tensors, t)
	}
	// The data section starts at the next multiple of the alignment.
	start := uint64(c.off)
	if r := start % f.Alignment; r != 0 {
		start += f.Alignment - r
	}
	f.DataOffset = start
	size := uint64(len(f.data))
	for i := range f.Tensors {
		t := &f.Tensors[i]
		if start > size || t.Offset > size-start || t.Size > size-start-t.Offset {
			return fmt.Errorf("gguf: tensor %q data [%d, +%d) lies outside the file (data section at %d, file size %d)",
				t.Name, t.Offset, t.Size, start, size)
		}
	}
	return nil
}

// Get returns the value of a metadata key.
func (f *File) Get(key string) (Value, bool) {
	i, ok := f.kvIndex[key]
	if !ok {
		return Value{}, false
	}
	return f.KV[i].Value, true
}

// ErrMissing reports a metadata key that is absent; test with errors.Is.
var ErrMissing = errors.New("gguf: missing key")

func (f *File) lookup(key string) (Value, error) {
	v, ok := f.Get(key)
	if !ok {
		return Value{}, fmt.Errorf("%w %q", ErrMissing, key)
	}
	return v, nil
}

func typeErr(key string, v Value, want string) error {
	if v.typ == ValueArray {
		return fmt.Errorf("gguf: key %q is an array of %v, want %s", key, v.elem, want)
	}
	return fmt.Errorf("gguf: key %q has type %v, want %s", key, v.typ, want)
}

// String returns a STRING metadata value.
func (f *File) String(key string) (string, error) {
	v, err := f.lookup(key)
	if err != nil {
		return "", err
	}
	s, ok := v.AsString()
	if !ok {
		return "", typeErr(key, v, "string")
	}
	return s, nil
}

// Uint returns a metadata value of any integer type that is not negative.
func (f *File) Uint(key string) (uint64, error) {
	v, err := f.lookup(key)
	if err != nil {
		return 0, err
	}
	x, ok := v.AsUint()
	if !ok {
		return 0, typeErr(key, v, "non-negative integer")
	}
	return x, nil
}

// Float returns a metadata value of a float or integer type.
func (f *File) Float(key string) (float64, error) {
	v, err := f.lookup(key)
	if err != nil {
		return 0, err
	}
	x, ok := v.AsFloat()
	if !ok {
		return 0, typeErr(key, v, "number")
	}
	return x, nil
}

// Bool returns a BOOL metadata value.
func (f *File) Bool(key string) (bool, error) {
	v, err := f.lookup(key)
	if err != nil {
		return false, err
	}
	x, ok := v.AsBool()
	if !ok {
		return false, typeErr(key, v, "bool")
	}
	return x, nil
}

// StringArray returns an array of STRING.
func (f *File) StringArray(key string) ([]string, error) {
	v, err := f.lookup(key)
	if err != nil {
		return nil, err
	}
	x, ok := v.Strings()
	if !ok {
		return nil, typeErr(key, v, "string array")
	}
	return x, nil
}

// Float32Array returns an array of FLOAT32 (FLOAT64 arrays are narrowed).
func (f *File) Float32Array(key string) ([]float32, error) {
	v, err := f.lookup(key)
	if err != nil {
		return nil, err
	}
	x, ok := v.Float32s()
	if !ok {
		return nil, typeErr(key, v, "float32 array")
	}
	return x, nil
}

// Int32Array returns an array of any integer type whose elements fit in int32.
func (f *File) Int32Array(key string) ([]int32, error) {
	v, err := f.lookup(key)
	if err != nil {
		return nil, err
	}
	x, ok := v.Int32s()
	if !ok {
		return nil, typeErr(key, v, "int32 array")
	}
	return x, nil
}

// Tensor returns the descriptor of the named tensor.
func (f *File) Tensor(name string) (*TensorInfo, bool) {
	i, ok := f.tIndex[name]
	if !ok {
		return nil, false
	}
	return &f.Tensors[i], true
}

// TensorData returns the bytes of t, a sub-slice of the file image (read-only
// when the file was opened with Open). It returns nil after Close or when t
// does not lie inside this file.
func (f *File) TensorData(t *TensorInfo) []byte {
	size := uint64(len(f.data))
	if t == nil || f.DataOffset > size || t.Offset > size-f.DataOffset || t.Size > size-f.DataOffset-t.Offset {
		return nil
	}
	lo := f.DataOffset + t.Offset
	hi := lo + t.Size
	return f.data[lo:hi:hi]
}

// Close releases the file mapping. Slices returned by TensorData must not be
// used afterwards. Close of a File from Parse only drops the reference.
func (f *File) Close() error {
	data, unmap := f.data, f.unmap
	f.data, f.unmap = nil, nil
	if unmap != nil && data != nil {
		if err := unmap(data); err != nil {
			return fmt.Errorf("gguf: unmap: %w", err)
		}
	}
	return nil
}
