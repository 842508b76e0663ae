//go:build !amd64

package tensor

var (
	useAVX512 = false
	useVNNI   = false
)

type gemmKernel = func(w *byte, ldw int, x *float32, ldx int, out *float32, ldo int, kb, nr int)

type q8Kernel = func(p *byte, groups, nb int, x *byte, ldx int, out *float32, ldo int)

var (
	gemmKernels   map[DType][2][6]gemmKernel
	gemmF32R16    gemmKernel // F32 decode, 16 rows a tile
	q8Kernels     [8]q8Kernel
	q8AVX2Kernels [4]q8Kernel
	useAVX2       = false
)

func hasKernel(m *Mat) bool { return false }

func hasGemm(m *Mat, n int) bool { return false }

func matVecRows(out []float32, m *Mat, x []float32, lo, hi int) {}

func q8QuantAVX512(x *float32, dst *byte, nb int) {}

type attnValueKernel = func(aT, v *float32, ldv, n int, outT *float32, p0 int)

var (
	attnValueKernels [5]attnValueKernel
	valueChunks      = [...]int{16, 8, 4, 2, 1}
)

func siluAVX512(gv, u *float32, n int)                                        {}
func softmaxT(s *float32, n, p0 int)                                          {}
func attnScoresK8(qT, k *float32, ldk, hd int, out, scale *float32, nblk int) {}
func attnScoresK1(qT, k *float32, ldk, hd int, out, scale *float32, nblk int) {}
func rowValuesD64(a, v *float32, ldv, n int, out *float32)                    {}
func rowValuesD16(a, v *float32, ldv, n int, out *float32)                    {}
