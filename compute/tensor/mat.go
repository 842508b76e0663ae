package tensor

import (
	"fmt"
	"runtime"
	"sync"
	"unsafe"

	"github.com/unfed/unfed/compute/internal/mmap"
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

	// packed holds a Q8_0 matrix in the kernels' layout (packQ8Groups,
	// ceil(Rows/16) groups) once Pack has run; nil before.
	packOnce sync.Once
	packed   []byte
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

// Pack copies a Q8_0 matrix into the layout the kernels read (16 rows to a
// group, spec/07-model.md §6.1.2), in memory outside the Go heap that is
// freed when the matrix becomes unreachable. Afterwards products and Row
// read only the packed copy. Products on a matrix that was never packed
// give the same bits, packing 16 rows at a time as they go. Pack does
// nothing for other types and when called again; it must not run
// concurrently with products or Row on the same matrix.
func (m *Mat) Pack() error { return m.PackReleasing(nil) }

// PackReleasing is Pack that calls release with each run of the original
// bytes it has copied (a few MiB at a time), so that a caller whose matrix
// is a view of a file mapping can drop those pages as it goes, and the
// weights are never resident twice.
func (m *Mat) PackReleasing(release func(orig []byte)) error {
	if m.Type != Q8_0 {
		return nil
	}
	var err error
	m.packOnce.Do(func() {
		nb := m.Cols / Q8Block
		chunk := nb * q8ChunkBytes
		groups := (m.Rows + q8GroupRows - 1) / q8GroupRows
		buf, free, e := mmap.AnonHuge(groups * chunk)
		if e != nil {
			err = e
			return
		}
		step := max(1, (4<<20)/chunk) // groups per run
		for g0 := 0; g0 < groups; g0 += step {
			g1 := min(g0+step, groups)
			ParallelFor(g1-g0, runtime.GOMAXPROCS(0), m.Cols*q8GroupRows, func(lo, hi int) {
				packQ8Groups(buf[(g0+lo)*chunk:(g0+hi)*chunk], m.data, m.Rows, m.Cols, g0+lo, g0+hi)
			})
			if release != nil {
				release(m.data[g0*q8GroupRows*m.rowBytes : min(g1*q8GroupRows, m.Rows)*m.rowBytes])
			}
		}
		m.packed = buf
		runtime.AddCleanup(m, func(f func() error) { _ = f() }, free)
	})
	if err == nil && m.packed == nil {
		err = fmt.Errorf("tensor: matrix could not be packed")
	}
	return err
}

// Packed reports whether Pack has prepared the matrix.
func (m *Mat) Packed() bool { return m.packed != nil }

// Row dequantises row r into dst[:Cols].
func (m *Mat) Row(dst []float32, r int) {
	if m.f32 != nil {
		copy(dst[:m.Cols], m.f32[r*m.Cols:(r+1)*m.Cols])
		return
	}
	if m.packed != nil {
		unpackQ8Row(dst[:m.Cols], m.packed, m.Cols, r)
		runtime.KeepAlive(m)
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
