//go:build linux && amd64 && !purego

package tensor

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// threadCPU returns the CPU time the calling OS thread has used.
func threadCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(1, &ru) // RUSAGE_THREAD
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkGemm: batched products of real layer shapes, multiply-adds per
// second (GMAC/s) on one and two threads.
//
//	go test ./compute/tensor -run '^$' -bench Gemm -benchtime 20x
func BenchmarkGemm(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, c := range []struct {
		typ        DType
		rows, cols int
	}{{F32, 2048, 768}, {F16, 2048, 768}, {BF16, 2048, 768}, {Q8_0, 4864, 896}, {Q8_0, 896, 4864}} {
		w := randVec(r, c.rows*c.cols)
		var data []byte
		for i := 0; i < c.rows; i++ {
			data, _ = QuantizeRow(data, c.typ, w[i*c.cols:(i+1)*c.cols])
		}
		m, _ := NewMat(c.typ, c.rows, c.cols, data)
		_ = m.Pack()
		for _, n := range []int{1, 32, 128} {
			x := randVec(r, n*c.cols)
			out := make([]float32, n*c.rows)
			for _, th := range []int{1, 2} {
				b.Run(fmt.Sprintf("%v-%dx%d/n%d/threads%d", c.typ, c.rows, c.cols, n, th), func(b *testing.B) {
					runtime.LockOSThread()
					defer runtime.UnlockOSThread()
					c0 := threadCPU()
					for b.Loop() {
						_ = MatMul(out, m, x, n, th)
					}
					macs := float64(b.N) * float64(n*c.rows*c.cols)
					b.ReportMetric(macs/b.Elapsed().Seconds()/1e9, "GMAC/s")
					if th == 1 {
						// per second of this thread's CPU time: what the
						// kernel reaches while it has the core, on a
						// machine shared with other work
						b.ReportMetric(macs/(threadCPU()-c0).Seconds()/1e9, "GMAC/cpu-s")
					}
				})
			}
		}
	}
}

// BenchmarkDecodeStream: one vector through a matrix the size of a whole
// model (F32 131072×768, 384 MiB; Q8_0 262144×896, 238 MiB), so the
// weights stream from memory as in a decode step; F32 with the AVX-512
// kernel (16-row tiles) and with the AVX2 row kernel.
//
//	go test ./compute/tensor -run '^$' -bench DecodeStream -benchtime 5x -count 3
func BenchmarkDecodeStream(b *testing.B) {
	r := rand.New(rand.NewPCG(2, 2))
	for _, c := range []struct {
		typ        DType
		rows, cols int
	}{{F32, 131072, 768}, {Q8_0, 262144, 896}} {
		row := randVec(r, c.cols)
		var data []byte
		for i := 0; i < c.rows; i++ {
			data, _ = QuantizeRow(data, c.typ, row)
		}
		m, _ := NewMat(c.typ, c.rows, c.cols, data)
		_ = m.Pack()
		x := randVec(r, c.cols)
		out := make([]float32, c.rows)
		kernels := []string{"default"}
		if c.typ == F32 {
			kernels = []string{"avx512", "avx2-row"}
		}
		for _, th := range []int{1, 2} {
			for _, k := range kernels {
				b.Run(fmt.Sprintf("%v/%s/threads%d", c.typ, k, th), func(b *testing.B) {
					old := gemmDecodeF32
					gemmDecodeF32 = k != "avx2-row"
					defer func() { gemmDecodeF32 = old }()
					b.SetBytes(int64(len(data)))
					for b.Loop() {
						_ = MatMul(out, m, x, 1, th)
					}
				})
			}
		}
	}
}
