//go:build !purego

#include "textflag.h"

// AVX2 + FMA row kernel for the canonical F32 dot product (spec/07-model.md
// §6.1.1). Y0 holds slots 0-7 and Y1 slots 8-15; each slot is updated with
// one fused multiply-add per element in order, as in Dot, and the reduction
// is Dot's tree: Y0+=Y1 (slot i += i+8), low half += high half (i += i+4),
// then lanes (0,1) += (2,3) and lane0 += lane1.

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
	VFMADD231PS 0(DI), Y4, Y0
	VFMADD231PS 32(DI), Y5, Y1
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
