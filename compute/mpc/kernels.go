package mpc

// Dot products mod 2^64 of the parties' local linear algebra. Where the CPU
// has them, assembly kernels do the multiple-of-8 part (kernels_amd64.go);
// the loops here do the rest and everything on other CPUs.
var (
	dotU64Kernel    func(a, b *uint64, n int) uint64
	dot2U64Kernel   func(a, b, c *uint64, n int) (ab, ac uint64)
	dotI32U64Kernel func(w *int32, x *uint64, n int) uint64
	dotI16U64Kernel func(w *int16, x *uint64, n int) uint64
)

// dotU64 returns sum_i a[i]*b[i] mod 2^64 (len(b) >= len(a)).
func dotU64(a, b []uint64) uint64 {
	var acc uint64
	i := 0
	if n8 := len(a) &^ 7; dotU64Kernel != nil && n8 > 0 {
		b = b[:len(a)]
		acc = dotU64Kernel(&a[0], &b[0], n8)
		i = n8
	}
	for ; i < len(a); i++ {
		acc += a[i] * b[i]
	}
	return acc
}

// dot2U64 returns dotU64(a, b) and dotU64(a, c), reading a once.
func dot2U64(a, b, c []uint64) (ab, ac uint64) {
	i := 0
	if n8 := len(a) &^ 7; dot2U64Kernel != nil && n8 > 0 {
		b, c = b[:len(a)], c[:len(a)]
		ab, ac = dot2U64Kernel(&a[0], &b[0], &c[0], n8)
		i = n8
	}
	for ; i < len(a); i++ {
		ab += a[i] * b[i]
		ac += a[i] * c[i]
	}
	return ab, ac
}

// dotI32U64 returns sum_i w[i]*x[i] mod 2^64 with w sign-extended
// (len(x) >= len(w)).
func dotI32U64(w []int32, x []uint64) uint64 {
	var acc uint64
	i := 0
	if n8 := len(w) &^ 7; dotI32U64Kernel != nil && n8 > 0 {
		x = x[:len(w)]
		acc = dotI32U64Kernel(&w[0], &x[0], n8)
		i = n8
	}
	for ; i < len(w); i++ {
		acc += uint64(int64(w[i])) * x[i]
	}
	return acc
}

// dotI16U64 returns sum_i w[i]*x[i] mod 2^64 with w sign-extended
// (len(x) >= len(w)): dotI32U64 for weights stored in 16 bits.
func dotI16U64(w []int16, x []uint64) uint64 {
	var acc uint64
	i := 0
	if n8 := len(w) &^ 7; dotI16U64Kernel != nil && n8 > 0 {
		x = x[:len(w)]
		acc = dotI16U64Kernel(&w[0], &x[0], n8)
		i = n8
	}
	for ; i < len(w); i++ {
		acc += uint64(int64(w[i])) * x[i]
	}
	return acc
}
