//go:build !amd64 || purego

package tensor

// Without the assembly kernels (another architecture, or the purego build
// tag on amd64) the wrappers report that they did nothing and the callers
// run the portable code for everything, whatever useAVX512 says.

func siluAsm(g, u []float32) int { return 0 }

func attendAsm(out []float32, ldo int, q []float32, ldq int, kc, vc []float32, ld, p0, nl, n, hd int, scale float32, sc *AttnScratch) bool {
	return false
}

func valuesAsm(out, a, v []float32, ld int) int { return 0 }
