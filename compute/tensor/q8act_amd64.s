//go:build !purego

#include "textflag.h"

// func q8QuantAVX512(x *float32, dst *byte, nb int)
// Quantises nb blocks of 32 float32 into 40-byte activation blocks exactly as
// quantizeActsGeneric does (spec/07-model.md §6.1.2): amax by integer maximum
// of the magnitude bits, d = amax/127, id = d ≠ 0 ? 1/d : 0, q = RNE(clamp(x·id)),
// where clamp is VMAXPS(v, −127) then VMINPS(·, 127) (a NaN becomes −127).
TEXT ·q8QuantAVX512(SB), NOSPLIT, $0-24
	MOVQ x+0(FP), SI
	MOVQ dst+8(FP), DI
	MOVQ nb+16(FP), CX
	MOVL $0x7fffffff, AX
	VPBROADCASTD AX, Z20
	MOVL $0x42fe0000, AX // 127
	VPBROADCASTD AX, Z21
	MOVL $0xc2fe0000, AX // -127
	VPBROADCASTD AX, Z22
	MOVL $0x3f800000, AX // 1
	VMOVD AX, X23
qloop:
	VMOVUPS (SI), Z0
	VMOVUPS 64(SI), Z1
	VPANDD Z20, Z0, Z2
	VPANDD Z20, Z1, Z3
	VPMAXUD Z3, Z2, Z2
	VEXTRACTI64X4 $1, Z2, Y3
	VPMAXUD Y3, Y2, Y2
	VEXTRACTI32X4 $1, Y2, X3
	VPMAXUD X3, X2, X2
	VPSHUFD $0x4e, X2, X3
	VPMAXUD X3, X2, X2
	VPSHUFD $0xb1, X2, X3
	VPMAXUD X3, X2, X2
	VDIVSS X21, X2, X4 // d = amax / 127
	VMOVSS X4, 32(DI)
	VXORPS X5, X5, X5
	VMOVD X4, AX
	TESTL AX, AX
	JZ qzero
	VDIVSS X4, X23, X5 // id = 1 / d
qzero:
	VBROADCASTSS X5, Z5
	VMULPS Z5, Z0, Z0
	VMULPS Z5, Z1, Z1
	VMAXPS Z22, Z0, Z0
	VMAXPS Z22, Z1, Z1
	VMINPS Z21, Z0, Z0
	VMINPS Z21, Z1, Z1
	VCVTPS2DQ Z0, Z0
	VCVTPS2DQ Z1, Z1
	VPMOVDB Z0, (DI)
	VPMOVDB Z1, 16(DI)
	VPADDD Z1, Z0, Z0
	VEXTRACTI64X4 $1, Z0, Y1
	VPADDD Y1, Y0, Y0
	VEXTRACTI32X4 $1, Y0, X1
	VPADDD X1, X0, X0
	VPSHUFD $0x4e, X0, X1
	VPADDD X1, X0, X0
	VPSHUFD $0xb1, X0, X1
	VPADDD X1, X0, X0
	VMOVD X0, AX
	SHLL $7, AX
	NEGL AX
	MOVL AX, 36(DI)
	ADDQ $128, SI
	ADDQ $40, DI
	DECQ CX
	JNZ qloop
	VZEROUPPER
	RET
