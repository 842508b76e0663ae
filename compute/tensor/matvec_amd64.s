#include "textflag.h"

// Row kernels for the canonical dot product (spec/07-model.md §6.1), SSE2
// only. Accumulators: X0 = slots 0-3, X1 = 4-7, X2 = 8-11, X3 = 12-15.
// Reduction, as reduce16: X0+=X2, X1+=X3 (slot i += i+8); X0+=X1 (i += i+4);
// lanes (0,1) += (2,3); lane0 += lane1.

#define REDUCE_STORE \
	ADDPS X2, X0 \
	ADDPS X3, X1 \
	ADDPS X1, X0 \
	MOVHLPS X0, X1 \
	ADDPS X1, X0 \
	MOVAPS X0, X1 \
	SHUFPS $0x55, X1, X1 \
	ADDSS X1, X0 \
	MOVSS X0, (DX)

// func matVecF32(w, x, out *float32, rows, cols int)
// out[r] = dot(w[r*cols:(r+1)*cols], x) for r < rows; cols % 16 == 0, cols > 0.
TEXT ·matVecF32(SB), NOSPLIT, $0-40
	MOVQ w+0(FP), SI
	MOVQ out+16(FP), DX
	MOVQ rows+24(FP), R8
	MOVQ cols+32(FP), R9
	SHRQ $4, R9
rowloop:
	MOVQ x+8(FP), DI
	MOVQ R9, CX
	XORPS X0, X0
	XORPS X1, X1
	XORPS X2, X2
	XORPS X3, X3
colloop:
	MOVUPS 0(SI), X4
	MOVUPS 16(SI), X5
	MOVUPS 32(SI), X6
	MOVUPS 48(SI), X7
	MOVUPS 0(DI), X8
	MOVUPS 16(DI), X9
	MOVUPS 32(DI), X10
	MOVUPS 48(DI), X11
	MULPS X8, X4
	MULPS X9, X5
	MULPS X10, X6
	MULPS X11, X7
	ADDPS X4, X0
	ADDPS X5, X1
	ADDPS X6, X2
	ADDPS X7, X3
	ADDQ $64, SI
	ADDQ $64, DI
	DECQ CX
	JNZ colloop
	REDUCE_STORE
	ADDQ $4, DX
	DECQ R8
	JNZ rowloop
	RET

// Sign-extend the 16 int8 in X4 to int32 in X4 (0-3), X6 (4-7), X5 (8-11),
// X7 (12-15), convert to float32 and multiply by the scale in X8.
#define WIDEN_SCALE \
	MOVOU X4, X5 \
	PUNPCKLBW X4, X4 \
	PUNPCKHBW X5, X5 \
	PSRAW $8, X4 \
	PSRAW $8, X5 \
	MOVOU X4, X6 \
	MOVOU X5, X7 \
	PUNPCKLWL X4, X4 \
	PUNPCKHWL X6, X6 \
	PUNPCKLWL X5, X5 \
	PUNPCKHWL X7, X7 \
	PSRAL $16, X4 \
	PSRAL $16, X6 \
	PSRAL $16, X5 \
	PSRAL $16, X7 \
	CVTPL2PS X4, X4 \
	CVTPL2PS X6, X6 \
	CVTPL2PS X5, X5 \
	CVTPL2PS X7, X7 \
	MULPS X8, X4 \
	MULPS X8, X6 \
	MULPS X8, X5 \
	MULPS X8, X7

// Multiply by 16 floats of x at DI and accumulate.
#define MAC16 \
	MOVUPS 0(DI), X9 \
	MOVUPS 16(DI), X10 \
	MOVUPS 32(DI), X11 \
	MOVUPS 48(DI), X12 \
	MULPS X9, X4 \
	MULPS X10, X6 \
	MULPS X11, X5 \
	MULPS X12, X7 \
	ADDPS X4, X0 \
	ADDPS X6, X1 \
	ADDPS X5, X2 \
	ADDPS X7, X3 \
	ADDQ $64, DI

// func matVecQ8(w *byte, x, out *float32, rows, blocks int, tab *float32)
// Q8_0 rows of blocks×34 bytes; tab maps f16 bits to float32.
TEXT ·matVecQ8(SB), NOSPLIT, $0-48
	MOVQ w+0(FP), SI
	MOVQ out+16(FP), DX
	MOVQ rows+24(FP), R8
	MOVQ blocks+32(FP), R9
	MOVQ tab+40(FP), R10
q8row:
	MOVQ x+8(FP), DI
	MOVQ R9, CX
	XORPS X0, X0
	XORPS X1, X1
	XORPS X2, X2
	XORPS X3, X3
q8block:
	MOVWQZX 0(SI), AX
	MOVSS (R10)(AX*4), X8
	SHUFPS $0x00, X8, X8
	MOVOU 2(SI), X4
	WIDEN_SCALE
	MAC16
	MOVOU 18(SI), X4
	WIDEN_SCALE
	MAC16
	ADDQ $34, SI
	DECQ CX
	JNZ q8block
	REDUCE_STORE
	ADDQ $4, DX
	DECQ R8
	JNZ q8row
	RET
