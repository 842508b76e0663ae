//go:build !amd64 || purego

package tensor

// kernelLevels returns the portable code, and the same with every kernel
// switch wrongly on: without the kernels the switches must change nothing
// (the wrappers report that they did nothing), so each test that compares
// the levels with its reference shows it.
func kernelLevels() (levels map[string]func(), restore func()) {
	a2, a5, vn := useAVX2, useAVX512, useVNNI
	levels = map[string]func(){
		"generic":     func() { useAVX2, useAVX512, useVNNI = false, false, false },
		"switches-on": func() { useAVX2, useAVX512, useVNNI = true, true, true },
	}
	return levels, func() { useAVX2, useAVX512, useVNNI = a2, a5, vn }
}
