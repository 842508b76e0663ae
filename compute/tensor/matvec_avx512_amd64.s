#include "textflag.h"

// AVX-512 Q8_0 kernel, two rows at a time (no FMA). Z0 holds the 16 slots
// of the first row, Z1 those of the second: every slot sees the same
// additions in the same order as in the SSE2/AVX2 kernels; two rows give the
// two independent dependency chains the adder latency needs. The f16 block
// scale is converted by VCVTPH2PS, which gives F16ToF32's value for every
// finite and infinite scale; for a NaN scale it quiets a signalling NaN,
// which the product with the (finite) quant would do anyway, so the output
// bits are the same (TestQ8ScaleEdgeCases has both kinds of NaN).
//
// Each row is prefetched 8 KiB ahead into L2 (PREFETCHT1): a decode step
// streams the weights from DRAM once, and on the reference machine this
// distance and level beat PREFETCHT0 at 2 KiB by a quarter on a 145 MB
// matrix (docs/perf/compute.md §2).

// Reduce the 16 slots in zs (as Y/X names ys, xs) and store to (DX)(off).
#define REDUCE16(zs, ys, xs, off) \
	VEXTRACTF64X4 $1, zs, Y12 \
	VADDPS Y12, ys, ys \
	VEXTRACTF128 $1, ys, X12 \
	VADDPS X12, xs, xs \
	VMOVHLPS xs, xs, X12 \
	VADDPS X12, xs, xs \
	VSHUFPS $0x55, xs, xs, X12 \
	VADDSS X12, xs, xs \
	VMOVSS xs, off(DX)

// func matVecQ8x2AVX512(w *byte, x, out *float32, pairs, blocks int)
// Rows 2i and 2i+1 for i < pairs; rows are blocks*34 bytes.
TEXT ·matVecQ8x2AVX512(SB), NOSPLIT, $0-40
	MOVQ w+0(FP), SI
	MOVQ out+16(FP), DX
	MOVQ pairs+24(FP), R8
	MOVQ blocks+32(FP), R9
	MOVQ R9, R12
	IMULQ $34, R12 // row bytes
prow:
	MOVQ x+8(FP), DI
	MOVQ SI, R11
	ADDQ R12, R11
	MOVQ R9, CX
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
pblock:
	PREFETCHT1 8192(SI)
	PREFETCHT1 8192(R11)
	VPBROADCASTW 0(SI), Y8
	VPBROADCASTW 0(R11), Y9
	VCVTPH2PS Y8, Z8
	VCVTPH2PS Y9, Z9
	VPMOVSXBD 2(SI), Z4
	VPMOVSXBD 18(SI), Z5
	VPMOVSXBD 2(R11), Z6
	VPMOVSXBD 18(R11), Z7
	VCVTDQ2PS Z4, Z4
	VCVTDQ2PS Z5, Z5
	VCVTDQ2PS Z6, Z6
	VCVTDQ2PS Z7, Z7
	VMULPS Z8, Z4, Z4
	VMULPS Z8, Z5, Z5
	VMULPS Z9, Z6, Z6
	VMULPS Z9, Z7, Z7
	VMOVUPS 0(DI), Z10
	VMOVUPS 64(DI), Z11
	VMULPS Z10, Z4, Z4
	VMULPS Z11, Z5, Z5
	VMULPS Z10, Z6, Z6
	VMULPS Z11, Z7, Z7
	VADDPS Z4, Z0, Z0
	VADDPS Z6, Z1, Z1
	VADDPS Z5, Z0, Z0
	VADDPS Z7, Z1, Z1
	ADDQ $34, SI
	ADDQ $34, R11
	ADDQ $128, DI
	DECQ CX
	JNZ pblock
	REDUCE16(Z0, Y0, X0, 0)
	REDUCE16(Z1, Y1, X1, 4)
	ADDQ $8, DX
	MOVQ R11, SI
	DECQ R8
	JNZ prow
	VZEROUPPER
	RET

