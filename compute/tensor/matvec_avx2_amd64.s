#include "textflag.h"

// AVX2 forms of the row kernels (no FMA). Y0 holds slots 0-7 and Y1 slots
// 8-15, so every slot sees the same additions in the same order as the SSE2
// kernels and the generic code, and the reduction is the same tree:
// Y0+=Y1 (slot i += i+8), low half += high half (i += i+4), then as SSE2.

#define REDUCE_STORE_AVX \
	VADDPS Y1, Y0, Y0 \
	VEXTRACTF128 $1, Y0, X1 \
	VADDPS X1, X0, X0 \
	VMOVHLPS X0, X0, X1 \
	VADDPS X1, X0, X0 \
	VSHUFPS $0x55, X0, X0, X1 \
	VADDSS X1, X0, X0 \
	VMOVSS X0, (DX)

// func matVecF32AVX2(w, x, out *float32, rows, cols int)
TEXT ·matVecF32AVX2(SB), NOSPLIT, $0-40
	MOVQ w+0(FP), SI
	MOVQ out+16(FP), DX
	MOVQ rows+24(FP), R8
	MOVQ cols+32(FP), R9
	SHRQ $4, R9
frow:
	MOVQ x+8(FP), DI
	MOVQ R9, CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
fcol:
	PREFETCHT0 2048(SI)
	VMOVUPS 0(SI), Y4
	VMOVUPS 32(SI), Y5
	VMULPS 0(DI), Y4, Y4
	VMULPS 32(DI), Y5, Y5
	VADDPS Y4, Y0, Y0
	VADDPS Y5, Y1, Y1
	ADDQ $64, SI
	ADDQ $64, DI
	DECQ CX
	JNZ fcol
	REDUCE_STORE_AVX
	ADDQ $4, DX
	DECQ R8
	JNZ frow
	VZEROUPPER
	RET

// func matVecQ8AVX2(w *byte, x, out *float32, rows, blocks int, tab *float32)
TEXT ·matVecQ8AVX2(SB), NOSPLIT, $0-48
	MOVQ w+0(FP), SI
	MOVQ out+16(FP), DX
	MOVQ rows+24(FP), R8
	MOVQ blocks+32(FP), R9
	MOVL $0x77800000, AX // 2**112
	VMOVD AX, X15
qrow:
	MOVQ x+8(FP), DI
	MOVQ R9, CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
qblock:
	PREFETCHT0 2048(SI)
	// f16 scale to float32 without a table: (h&0x7fff)<<13 as float32
	// times 2**112 is exact for zero, subnormal and normal h; Inf/NaN
	// (exponent 31) take the branch.
	MOVWQZX 0(SI), AX
	MOVL AX, BX
	ANDL $0x7fff, BX
	ANDL $0x8000, AX
	SHLL $16, AX
	CMPL BX, $0x7c00
	JAE qspecial
	SHLL $13, BX
	VMOVD BX, X8
	VMULSS X15, X8, X8
	VMOVD AX, X9
	VORPS X9, X8, X8
	JMP qscaled
qspecial:
	ANDL $0x3ff, BX
	SHLL $13, BX
	ORL $0x7f800000, BX
	ORL AX, BX
	VMOVD BX, X8
qscaled:
	VBROADCASTSS X8, Y8
	VPMOVSXBD 2(SI), Y4
	VPMOVSXBD 10(SI), Y5
	VPMOVSXBD 18(SI), Y6
	VPMOVSXBD 26(SI), Y7
	VCVTDQ2PS Y4, Y4
	VCVTDQ2PS Y5, Y5
	VCVTDQ2PS Y6, Y6
	VCVTDQ2PS Y7, Y7
	VMULPS Y8, Y4, Y4
	VMULPS Y8, Y5, Y5
	VMULPS Y8, Y6, Y6
	VMULPS Y8, Y7, Y7
	VMULPS 0(DI), Y4, Y4
	VMULPS 32(DI), Y5, Y5
	VMULPS 64(DI), Y6, Y6
	VMULPS 96(DI), Y7, Y7
	VADDPS Y4, Y0, Y0
	VADDPS Y5, Y1, Y1
	VADDPS Y6, Y0, Y0
	VADDPS Y7, Y1, Y1
	ADDQ $34, SI
	ADDQ $128, DI
	DECQ CX
	JNZ qblock
	REDUCE_STORE_AVX
	ADDQ $4, DX
	DECQ R8
	JNZ qrow
	VZEROUPPER
	RET
