package mpc

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestEmbedRowsKernel: the embedding inner product, with the assembly kernel
// where the CPU has one and with the portable loop alone, gives the bits of
// the plain definition sum_v y[v] * table[v] mod 2^64, for widths that are
// and are not multiples of the kernel's eight columns, row counts that are
// and are not multiples of four, and extreme entries.
func TestEmbedRowsKernel(t *testing.T) {
	kernel := embed4
	defer func() { embed4 = kernel }()
	r := rand.New(rand.NewPCG(1, 2))
	for _, sh := range []struct{ vocab, width int }{{512, 128}, {37, 2 * 896}, {9, 13}, {4, 8}, {3, 40}} {
		table := make([]int32, sh.vocab*sh.width)
		for i := range table {
			switch i % 7 {
			case 0:
				table[i] = -1 << 31
			case 1:
				table[i] = 1<<31 - 1
			default:
				table[i] = int32(r.Uint32())
			}
		}
		y := make([]uint64, sh.vocab)
		for i := range y {
			y[i] = r.Uint64()
		}
		want := make([]uint64, sh.width)
		for v := range y {
			for i := range want {
				want[i] += y[v] * uint64(int64(table[v*sh.width+i]))
			}
		}
		for _, k := range []struct {
			name string
			f    func(acc *uint64, r0, r1, r2, r3 *int32, y *uint64, n int)
		}{{"kernel", kernel}, {"portable", nil}} {
			embed4 = k.f
			if got := embedRows(table, y, sh.width); !slices.Equal(got, want) {
				t.Fatalf("vocab %d width %d, %s (kernel present: %v): wrong sum", sh.vocab, sh.width, k.name, kernel != nil)
			}
		}
	}
}
