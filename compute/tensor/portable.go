package tensor

// useAVX2, useAVX512 and useVNNI say which assembly kernels run
// (matvec_amd64.go sets them from the CPU). Without the kernels (other
// architectures, the purego build tag) they stay false, and setting them
// changes nothing: the wrappers there report that they did nothing.
var useAVX2, useAVX512, useVNNI bool

// UsePortable makes every later product and attention kernel run the
// portable Go code instead of the assembly kernels, and returns a function
// that restores the previous selection. The bits are the same either way
// (the determinism contract above); a verifier re-executes on the portable
// path so that its verdict does not rest on the kernels it checks
// (spec/11-verification.md §4.1). It must not run while products do.
func UsePortable() (restore func()) {
	a2, a5, vn := useAVX2, useAVX512, useVNNI
	useAVX2, useAVX512, useVNNI = false, false, false
	return func() { useAVX2, useAVX512, useVNNI = a2, a5, vn }
}
