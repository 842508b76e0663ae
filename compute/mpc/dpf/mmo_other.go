//go:build !amd64

package dpf

// Without assembly the kernels' switches (asmMMO, ...) stay nil and these
// are never called; they exist so that the callers can name the kernels
// directly (aes.go).

func convertLeaves(rk *roundKeys, out, seeds *uint64, t *byte, final *uint64, neg uint64, leaves int) {
	panic("dpf: no assembly kernels")
}

func mmoBlocks(rk *roundKeys, dst, src *uint64, n, stride int) { panic("dpf: no assembly kernels") }

func expandPairs(rkL, rkR *roundKeys, cur *uint64, curT *byte, next *uint64, nextT *byte, pairs int, cw *levelCW) {
	panic("dpf: no assembly kernels")
}

func expandParents512(rkL, rkR *roundKeys, cur *uint64, curT *byte, next *uint64, nextT *byte, parents int, cw *levelCW) {
	panic("dpf: no assembly kernels")
}

func mmoBlocks512(rk *roundKeys, dst, src *uint64, n int) { panic("dpf: no assembly kernels") }
