//go:build !amd64 || purego

package dpf

// Without the assembly kernels (another architecture, or the purego build
// tag on amd64) these report that they did nothing, and their callers run
// the portable Go paths.

func mmoAsm(rk *roundKeys, dst, src []uint64, n, stride int) bool { return false }

func expandAsm(cur []uint64, curT []byte, next []uint64, nextT []byte, pairs int, cw *levelCW) bool {
	return false
}

func leavesAsm(out, seeds []uint64, t []byte, final []uint64, neg uint64, leaves int) bool {
	return false
}
