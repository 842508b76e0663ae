package mpc

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestEmbedRowsKernel: the embedding inner product, with the assembly kernel
// where the CPU has one and with the portable loop alone, gives the bits of
// the plain definition (each half of the row with its own one-hot shares,
// mod 2^64), for widths that are and are not multiples of the kernel's
// sixteen columns, row counts that are and are not multiples of four, and extreme
// entries.
func TestEmbedRowsKernel(t *testing.T) {
	kernel := embed4
	defer func() { embed4 = kernel }()
	r := rand.New(rand.NewPCG(1, 2))
	for _, sh := range []struct{ vocab, dim int }{{512, 64}, {37, 896}, {9, 13}, {4, 4}, {3, 20}, {6, 24}} {
		width := 2 * sh.dim
		table := make([]int16, sh.vocab*width)
		for i := range table {
			switch i % 7 {
			case 0:
				table[i] = -1 << 15
			case 1:
				table[i] = 1<<15 - 1
			default:
				table[i] = int16(r.Uint32())
			}
		}
		yE, yN := make([]uint64, sh.vocab), make([]uint64, sh.vocab)
		for i := range yE {
			yE[i], yN[i] = r.Uint64(), r.Uint64()
		}
		want := make([]uint64, width)
		for v := range yE {
			for i := range want {
				y := yE[v]
				if i >= sh.dim {
					y = yN[v]
				}
				want[i] += y * uint64(int64(table[v*width+i]))
			}
		}
		for _, k := range []struct {
			name string
			f    func(acc *uint64, accHi *uint32, r0, r1, r2, r3 *int16, y *uint64, n int)
		}{{"kernel", kernel}, {"portable", nil}} {
			embed4 = k.f
			if got := embedRows(table, yE, yN, sh.dim); !slices.Equal(got, want) {
				t.Fatalf("vocab %d dim %d, %s (kernel present: %v): wrong sum", sh.vocab, sh.dim, k.name, kernel != nil)
			}
		}
	}
}

// TestDotKernels: the dot products of the parties' linear algebra and
// lookups, with the assembly kernels where the CPU has them and with the
// portable loops alone, equal the plain definitions for lengths around the
// kernels' eight lanes.
func TestDotKernels(t *testing.T) {
	k1, k2, k3, k4 := dotU64Kernel, dot2U64Kernel, dotI32U64Kernel, dotI16U64Kernel
	defer func() { dotU64Kernel, dot2U64Kernel, dotI32U64Kernel, dotI16U64Kernel = k1, k2, k3, k4 }()
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{0, 1, 7, 8, 9, 15, 16, 17, 23, 24, 31, 33, 896, 2048, 4867} {
		a, b, c := make([]uint64, n), make([]uint64, n), make([]uint64, n)
		w := make([]int32, n)
		w16 := make([]int16, n)
		var ab, ac, wa, wa16 uint64
		for i := range a {
			a[i], b[i], c[i] = r.Uint64(), r.Uint64(), r.Uint64()
			w[i] = int32(r.Uint32())
			w16[i] = int16(r.Uint32())
			if i%5 == 0 {
				w[i] = -1 << 31
				w16[i] = -1 << 15
			}
			ab += a[i] * b[i]
			ac += a[i] * c[i]
			wa += uint64(int64(w[i])) * a[i]
			wa16 += uint64(int64(w16[i])) * a[i]
		}
		for _, kernels := range []bool{true, false} {
			if kernels {
				dotU64Kernel, dot2U64Kernel, dotI32U64Kernel, dotI16U64Kernel = k1, k2, k3, k4
			} else {
				dotU64Kernel, dot2U64Kernel, dotI32U64Kernel, dotI16U64Kernel = nil, nil, nil, nil
			}
			g2b, g2c := dot2U64(a, b, c)
			if got := dotU64(a, b); got != ab || g2b != ab || g2c != ac {
				t.Fatalf("n %d kernels %v (present %v): dotU64 %x dot2U64 %x %x, want %x %x", n, kernels, k1 != nil, got, g2b, g2c, ab, ac)
			}
			if got := dotI32U64(w, a); got != wa {
				t.Fatalf("n %d kernels %v (present %v): dotI32U64 %x, want %x", n, kernels, k3 != nil, got, wa)
			}
			if got := dotI16U64(w16, a); got != wa16 {
				t.Fatalf("n %d kernels %v (present %v): dotI16U64 %x, want %x", n, kernels, k4 != nil, got, wa16)
			}
		}
	}
}

// TestWmat: a weight matrix whose values fit in 16 bits is stored in 16,
// one with a value outside in 32, and the matrix products of either form,
// for one row of inputs and for several (a prefill step), are the plain
// definition's bits.
func TestWmat(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	const rows, cols = 13, 37
	for _, wide := range []bool{false, true} {
		w := make([]int32, rows*cols)
		for i := range w {
			w[i] = int32(int16(r.Uint32()))
		}
		w[3] = -1 << 15
		if wide {
			w[rows*cols-1] = 1 << 15
		}
		m := newWmat(w)
		if (m.w16 == nil) != wide || (m.w32 == nil) == wide {
			t.Fatalf("wide %v: stored in 16 bits %v, in 32 %v", wide, m.w16 != nil, m.w32 != nil)
		}
		for _, n := range []int{1, 3} {
			x := make([]uint64, n*cols)
			for i := range x {
				x[i] = r.Uint64()
			}
			got := matvecRows(m, x, rows, cols, n)
			for i := 0; i < n; i++ {
				for row := 0; row < rows; row++ {
					var want uint64
					for j := 0; j < cols; j++ {
						want += uint64(int64(w[row*cols+j])) * x[i*cols+j]
					}
					if got[i*rows+row] != want {
						t.Fatalf("wide %v, %d rows of input: out[%d][%d] = %x, want %x", wide, n, i, row, got[i*rows+row], want)
					}
				}
			}
		}
	}
}

// TestRotTable: a window of the rotated table is the rotated lookup
// sum_j y[j] * tab[(u - j) mod size] for every u.
func TestRotTable(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	const size = 64
	tab, y := make([]uint64, size), make([]uint64, size)
	for i := range tab {
		tab[i], y[i] = r.Uint64(), r.Uint64()
	}
	rt := rotTable(tab)
	for u := 0; u < size; u++ {
		var want uint64
		for j := range y {
			want += y[j] * tab[((u-j)%size+size)%size]
		}
		if got := dotU64(y, rt[size-u:2*size-u]); got != want {
			t.Fatalf("u %d: %x, want %x", u, got, want)
		}
	}
}
