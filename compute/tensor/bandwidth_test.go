package tensor

import (
	"fmt"
	"testing"
)

var sinkU64 uint64

// readSum reads b sequentially, eight independent accumulators.
func readSum(b []uint64) uint64 {
	var s0, s1, s2, s3, s4, s5, s6, s7 uint64
	for len(b) >= 8 {
		s0 += b[0]
		s1 += b[1]
		s2 += b[2]
		s3 += b[3]
		s4 += b[4]
		s5 += b[5]
		s6 += b[6]
		s7 += b[7]
		b = b[8:]
	}
	return s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7
}

// BenchmarkMemoryBandwidth measures sequential read bandwidth of the machine
// over a 512 MiB buffer (far beyond the caches), with 1 and 2 goroutines.
// It is the denominator of the bandwidth bound in docs/perf/compute.md.
func BenchmarkMemoryBandwidth(b *testing.B) {
	buf := make([]uint64, 64<<20) // 512 MiB
	for i := range buf {
		buf[i] = uint64(i)
	}
	for _, th := range []int{1, 2} {
		b.Run(fmt.Sprintf("threads%d", th), func(b *testing.B) {
			b.SetBytes(int64(len(buf) * 8))
			for i := 0; i < b.N; i++ {
				sums := make([]uint64, th)
				ParallelFor(th, th, 1<<30, func(lo, hi int) {
					for w := lo; w < hi; w++ {
						n := len(buf) / th
						sums[w] = readSum(buf[w*n : (w+1)*n])
					}
				})
				sinkU64 += sums[0]
			}
		})
	}
}

// BenchmarkMatVec measures the row kernels on a 4096×4096 matrix (64 MiB in
// F32, 17 MiB in Q8_0), one vector.
func BenchmarkMatVec(b *testing.B) {
	const n = 4096
	src := make([]float32, n)
	for i := range src {
		src[i] = float32(i%17) - 8
	}
	for _, typ := range []DType{F32, Q8_0, F16} {
		var data []byte
		for r := 0; r < n; r++ {
			data, _ = QuantizeRow(data, typ, src)
		}
		m, _ := NewMat(typ, n, n, data)
		out := make([]float32, n)
		for _, th := range []int{1, 2} {
			b.Run(fmt.Sprintf("%v/threads%d", typ, th), func(b *testing.B) {
				b.SetBytes(int64(len(data)))
				for i := 0; i < b.N; i++ {
					_ = MatMul(out, m, src, 1, th)
				}
			})
		}
	}
}
