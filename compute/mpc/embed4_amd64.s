#include "textflag.h"

// func embed4AVX512(acc *uint64, r0, r1, r2, r3 *int16, y *uint64, n int)
//
// Eight columns per pass: each row's eight int16 are sign-extended to
// int64 (VPMOVSXWQ), multiplied by that row's y (VPMULLQ keeps the low 64
// bits, the product mod 2^64) and added to the accumulators. Addition mod
// 2^64 is associative, so the result has the bits of the portable loop.
TEXT ·embed4AVX512(SB), NOSPLIT, $0-56
	MOVQ acc+0(FP), DI
	MOVQ r0+8(FP), R8
	MOVQ r1+16(FP), R9
	MOVQ r2+24(FP), R10
	MOVQ r3+32(FP), R11
	MOVQ y+40(FP), SI
	MOVQ n+48(FP), CX
	VPBROADCASTQ 0(SI), Z0
	VPBROADCASTQ 8(SI), Z1
	VPBROADCASTQ 16(SI), Z2
	VPBROADCASTQ 24(SI), Z3
	XORQ AX, AX

loop:
	CMPQ AX, CX
	JGE  done
	VPMOVSXWQ (R8)(AX*2), Z4
	VPMOVSXWQ (R9)(AX*2), Z5
	VPMOVSXWQ (R10)(AX*2), Z6
	VPMOVSXWQ (R11)(AX*2), Z7
	VPMULLQ   Z0, Z4, Z4
	VPMULLQ   Z1, Z5, Z5
	VPMULLQ   Z2, Z6, Z6
	VPMULLQ   Z3, Z7, Z7
	VPADDQ    Z4, Z5, Z5
	VPADDQ    Z6, Z7, Z7
	VPADDQ    Z5, Z7, Z7
	VPADDQ    (DI)(AX*8), Z7, Z7
	VMOVDQU64 Z7, (DI)(AX*8)
	ADDQ      $8, AX
	JMP       loop

done:
	VZEROUPPER
	RET
