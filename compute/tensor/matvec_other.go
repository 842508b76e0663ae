//go:build !amd64 || purego

package tensor

// Without the assembly kernels (another architecture, or the purego build
// tag on amd64) the wrappers report that they did nothing and their callers
// run the portable Go code, whatever useAVX2, useAVX512 and useVNNI say;
// dot16 is the portable loop.

func matVecAsm(out []float32, w *Mat, x []float32, n, lo, hi int) bool { return false }

func gemmAsm(out []float32, w *Mat, b *Batch, lo, hi int) bool { return false }

func q8PanelAsm(p []byte, groups, nb int, acts []byte, ldx, n int, out []float32, ldo int) bool {
	return false
}

func quantizeActsAsm(dst []byte, x []float32) bool { return false }

func dot16(a, b []float32, s *[16]float32) { dot16Generic(a, b, s) }
