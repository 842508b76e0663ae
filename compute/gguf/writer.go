package gguf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Writer builds a GGUF v3 file in memory order: metadata in the order added,
// then tensor descriptors, then tensor data, each tensor aligned to
// general.alignment (32 unless a general.alignment key was added). It is for
// synthetic models and tests; tensor data is held in memory until WriteTo.
type Writer struct {
	kv      []KV
	keys    map[string]bool
	tensors []TensorInfo
	data    [][]byte
	names   map[string]bool
	err     error // first error of an Add method, returned by WriteTo
}

// NewWriter returns an empty Writer.
func NewWriter() *Writer {
	return &Writer{keys: map[string]bool{}, names: map[string]bool{}}
}

// Add appends a metadata pair. A duplicate or over-long key, or an invalid
// value, makes WriteTo fail.
func (w *Writer) Add(key string, v Value) {
	switch {
	case w.err != nil:
		return
	case w.keys[key]:
		w.err = fmt.Errorf("gguf: writer: duplicate key %q", key)
	case len(key) > MaxKeyLen:
		w.err = fmt.Errorf("gguf: writer: key of %d bytes exceeds limit", len(key))
	case !v.ok:
		w.err = fmt.Errorf("gguf: writer: invalid value for key %q", key)
	default:
		w.keys[key] = true
		w.kv = append(w.kv, KV{Key: key, Value: v})
	}
}

// AddString appends a STRING pair.
func (w *Writer) AddString(key, v string) { w.Add(key, StringValue(v)) }

// AddUint32 appends a UINT32 pair.
func (w *Writer) AddUint32(key string, v uint32) { w.Add(key, Uint32Value(v)) }

// AddUint64 appends a UINT64 pair.
func (w *Writer) AddUint64(key string, v uint64) { w.Add(key, Uint64Value(v)) }

// AddInt32 appends an INT32 pair.
func (w *Writer) AddInt32(key string, v int32) { w.Add(key, Int32Value(v)) }

// AddFloat32 appends a FLOAT32 pair.
func (w *Writer) AddFloat32(key string, v float32) { w.Add(key, Float32Value(v)) }

// AddBool appends a BOOL pair.
func (w *Writer) AddBool(key string, v bool) { w.Add(key, BoolValue(v)) }

// AddStringArray appends an ARRAY of STRING pair.
func (w *Writer) AddStringArray(key string, v []string) { w.Add(key, StringArrayValue(v)) }

// AddFloat32Array appends an ARRAY of FLOAT32 pair.
func (w *Writer) AddFloat32Array(key string, v []float32) { w.Add(key, Float32ArrayValue(v)) }

// AddInt32Array appends an ARRAY of INT32 pair.
func (w *Writer) AddInt32Array(key string, v []int32) { w.Add(key, Int32ArrayValue(v)) }

// AddTensor appends a tensor. data must hold exactly the bytes that dims and
// typ require; the Writer keeps a reference to it until WriteTo.
func (w *Writer) AddTensor(name string, typ Type, dims []uint64, data []byte) error {
	if w.names[name] {
		return fmt.Errorf("gguf: writer: duplicate tensor %q", name)
	}
	if len(name) > MaxKeyLen {
		return fmt.Errorf("gguf: writer: tensor name of %d bytes exceeds limit", len(name))
	}
	if len(dims) == 0 || len(dims) > MaxDims {
		return fmt.Errorf("gguf: writer: tensor %q has %d dimensions (1..%d)", name, len(dims), MaxDims)
	}
	if !typ.Sizable() {
		return fmt.Errorf("gguf: writer: tensor %q has unsupported type %v", name, typ)
	}
	if dims[0]%typ.BlockSize() != 0 {
		return fmt.Errorf("gguf: writer: tensor %q row length %d is not a multiple of the %v block size %d",
			name, dims[0], typ, typ.BlockSize())
	}
	elems := uint64(1)
	for _, d := range dims {
		if d != 0 && elems > (1<<63-1)/d {
			return fmt.Errorf("gguf: writer: tensor %q element count overflows", name)
		}
		elems *= d
	}
	size, err := typ.RowSize(elems)
	if err != nil {
		return err
	}
	if uint64(len(data)) != size {
		return fmt.Errorf("gguf: writer: tensor %q has %d bytes, want %d", name, len(data), size)
	}
	w.names[name] = true
	w.tensors = append(w.tensors, TensorInfo{Name: name, Dims: append([]uint64(nil), dims...), Type: typ, Size: size})
	w.data = append(w.data, data)
	return nil
}

func (w *Writer) alignment() (uint64, error) {
	for _, kv := range w.kv {
		if kv.Key == "general.alignment" {
			a, ok := kv.Value.AsUint()
			if !ok || a == 0 || a > MaxAlignment || a&(a-1) != 0 {
				return 0, errors.New("gguf: writer: general.alignment is not a power of two")
			}
			return a, nil
		}
	}
	return DefaultAlignment, nil
}

// countingWriter tracks bytes written and the first error.
type countingWriter struct {
	w   *bufio.Writer
	n   int64
	err error
}

func (c *countingWriter) write(p []byte) {
	if c.err != nil {
		return
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.err = err
}

func (c *countingWriter) u32(x uint32) { c.write(binary.LittleEndian.AppendUint32(nil, x)) }
func (c *countingWriter) u64(x uint64) { c.write(binary.LittleEndian.AppendUint64(nil, x)) }
func (c *countingWriter) str(s string) { c.u64(uint64(len(s))); c.write([]byte(s)) }

func (c *countingWriter) pad(align uint64) {
	if r := uint64(c.n) % align; r != 0 {
		c.write(make([]byte, align-r))
	}
}

func (c *countingWriter) value(v Value) {
	c.u32(uint32(v.typ))
	switch v.typ {
	case ValueString:
		c.str(v.str)
	case ValueArray:
		c.u32(uint32(v.elem))
		c.u64(uint64(v.n))
		if v.elem == ValueString {
			for _, s := range v.strs {
				c.str(s)
			}
		} else {
			c.write(v.raw)
		}
	default:
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], v.num)
		c.write(b[:v.typ.scalarSize()])
	}
}

// WriteTo writes the GGUF v3 image to out.
func (w *Writer) WriteTo(out io.Writer) (int64, error) {
	if w.err != nil {
		return 0, w.err
	}
	align, err := w.alignment()
	if err != nil {
		return 0, err
	}
	c := &countingWriter{w: bufio.NewWriterSize(out, 1<<16)}
	c.write([]byte(magic))
	c.u32(3)
	c.u64(uint64(len(w.tensors)))
	c.u64(uint64(len(w.kv)))
	for _, kv := range w.kv {
		c.str(kv.Key)
		c.value(kv.Value)
	}
	var off uint64
	for _, t := range w.tensors {
		c.str(t.Name)
		c.u32(uint32(len(t.Dims)))
		for _, d := range t.Dims {
			c.u64(d)
		}
		c.u32(uint32(t.Type))
		c.u64(off)
		off += t.Size
		if r := off % align; r != 0 {
			off += align - r
		}
	}
	c.pad(align)
	for i, d := range w.data {
		c.write(d)
		if i < len(w.data)-1 {
			c.pad(align)
		}
	}
	if c.err == nil {
		c.err = c.w.Flush()
	}
	if c.err != nil {
		return c.n, fmt.Errorf("gguf: write: %w", c.err)
	}
	return c.n, nil
}
