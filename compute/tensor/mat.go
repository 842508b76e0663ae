package tensor

import (
	"fmt"
	"unsafe"
)

// MaxElements bounds the number of elements of one matrix (2**34), so that
// a hostile header cannot make row arithmetic overflow.
const MaxElements = 1 << 34

// Mat is a read-only row-major matrix of Rows rows of Cols elements of one
// element type, usually a view into a memory-mapped model file. Row r is the
// weight vector that produces output r.
type Mat struct {
	Type     DType
	Rows     int
	Cols     int
	data     []byte
	f32      []float32 // view of data when Type is F32
	rowBytes int
}

// NewMat wraps data as a rows×cols matrix of type t. data must be exactly the
// matrix's size. The matrix keeps a reference to data and never copies it,
// except for F32 data that is not 4-byte aligned.
func NewMat(t DType, rows, cols int, data []byte) (*Mat, error) {
	if rows <= 0 || cols <= 0 || int64(rows)*int64(cols) > MaxElements {
		return nil, fmt.Errorf("tensor: bad matrix shape %d×%d", rows, cols)
	}
	rb, err := t.RowBytes(cols)
	if err != nil {
		return nil, err
	}
	if int64(len(data)) != int64(rb)*int64(rows) {
		return nil, fmt.Errorf("tensor: %v %d×%d matrix needs %d bytes, have %d", t, rows, cols, int64(rb)*int64(rows), len(data))
	}
	m := &Mat{Type: t, Rows: rows, Cols: cols, data: data, rowBytes: rb}
	if t == F32 {
		m.f32 = Float32View(data)
	}
	return m, nil
}

// NewMatF32 wraps a float32 slice as a rows×cols F32 matrix without copying.
func NewMatF32(rows, cols int, v []float32) (*Mat, error) {
	if rows <= 0 || cols <= 0 || len(v) != rows*cols {
		return nil, fmt.Errorf("tensor: bad f32 matrix %d×%d for %d values", rows, cols, len(v))
	}
	b := unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v))
	return &Mat{Type: F32, Rows: rows, Cols: cols, data: b, f32: v, rowBytes: 4 * cols}, nil
}

// Float32View reinterprets little-endian float32 bytes as a []float32 without
// copying when b is 4-byte aligned, and copies otherwise. len(b) must be a
// multiple of 4.
func Float32View(b []byte) []float32 {
	n := len(b) / 4
	if n == 0 {
		return nil
	}
	if uintptr(unsafe.Pointer(&b[0]))%4 == 0 {
		return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), n)
	}
	out := make([]float32, n)
	_ = DequantRow(out, F32, b[:4*n])
	return out
}

// Bytes returns the matrix's raw bytes (a view, not a copy).
func (m *Mat) Bytes() []byte { return m.data }

// Row dequantises row r into dst[:Cols].
func (m *Mat) Row(dst []float32, r int) {
	if m.f32 != nil {
		copy(dst[:m.Cols], m.f32[r*m.Cols:(r+1)*m.Cols])
		return
	}
	_ = DequantRow(dst[:m.Cols], m.Type, m.data[r*m.rowBytes:(r+1)*m.rowBytes])
}

// rowF32 returns row r as float32, either a view (F32) or dequantised into buf.
func (m *Mat) rowF32(buf []float32, r int) []float32 {
	if m.f32 != nil {
		return m.f32[r*m.Cols : (r+1)*m.Cols]
	}
	src := m.data[r*m.rowBytes : (r+1)*m.rowBytes]
	switch m.Type {
	case Q8_0:
		dequantQ8Row(buf[:m.Cols], src)
	default:
		_ = DequantRow(buf[:m.Cols], m.Type, src)
	}
	return buf[:m.Cols]
}
