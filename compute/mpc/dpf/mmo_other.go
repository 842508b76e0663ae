//go:build !amd64

package dpf

// useAsm is false: there is no assembly here.
var useAsm = false

func mmoBlocks(rk *roundKeys, dst, src *uint64, n, stride int) {
	panic("dpf: no assembly on this architecture") // unreachable: useAsm is false
}

func expandPairs(rkL, rkR *roundKeys, cur *uint64, curT *byte, next *uint64, nextT *byte, pairs int, cw *levelCW) {
	panic("dpf: no assembly on this architecture") // unreachable: useAsm is false
}
