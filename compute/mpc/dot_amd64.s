#include "textflag.h"

// Dot products mod 2^64 with AVX-512 (VPMULLQ keeps the low 64 bits of each
// product). n is a multiple of 8 in every kernel; the Go callers do the
// tail. Addition mod 2^64 is associative, so the lane-wise partial sums
// give the bits of the portable loops.

// HSUM adds the eight lanes of Z0 into AX.
#define HSUM \
	VEXTRACTI64X4 $1, Z0, Y1; \
	VPADDQ        Y1, Y0, Y0; \
	VEXTRACTI128  $1, Y0, X1; \
	VPADDQ        X1, X0, X0; \
	VPSHUFD       $0x4e, X0, X1; \
	VPADDQ        X1, X0, X0; \
	VMOVQ         X0, AX

// func dotU64AVX512(a, b *uint64, n int) uint64
TEXT ·dotU64AVX512(SB), NOSPLIT, $0-32
	MOVQ   a+0(FP), SI
	MOVQ   b+8(FP), DI
	MOVQ   n+16(FP), CX
	VPXORQ Z0, Z0, Z0
	XORQ   AX, AX

dloop:
	CMPQ      AX, CX
	JGE       ddone
	VMOVDQU64 (SI)(AX*8), Z2
	VPMULLQ   (DI)(AX*8), Z2, Z2
	VPADDQ    Z2, Z0, Z0
	ADDQ      $8, AX
	JMP       dloop

ddone:
	HSUM
	MOVQ AX, ret+24(FP)
	VZEROUPPER
	RET

// func dot2U64AVX512(a, b, c *uint64, n int) (ab, ac uint64)
TEXT ·dot2U64AVX512(SB), NOSPLIT, $0-48
	MOVQ   a+0(FP), SI
	MOVQ   b+8(FP), DI
	MOVQ   c+16(FP), R8
	MOVQ   n+24(FP), CX
	VPXORQ Z0, Z0, Z0
	VPXORQ Z3, Z3, Z3
	XORQ   AX, AX

d2loop:
	CMPQ      AX, CX
	JGE       d2done
	VMOVDQU64 (SI)(AX*8), Z2
	VPMULLQ   (DI)(AX*8), Z2, Z4
	VPMULLQ   (R8)(AX*8), Z2, Z5
	VPADDQ    Z4, Z0, Z0
	VPADDQ    Z5, Z3, Z3
	ADDQ      $8, AX
	JMP       d2loop

d2done:
	HSUM
	MOVQ      AX, ab+32(FP)
	VMOVDQA64 Z3, Z0
	HSUM
	MOVQ      AX, ac+40(FP)
	VZEROUPPER
	RET

// func dotI32U64AVX512(w *int32, x *uint64, n int) uint64
TEXT ·dotI32U64AVX512(SB), NOSPLIT, $0-32
	MOVQ   w+0(FP), SI
	MOVQ   x+8(FP), DI
	MOVQ   n+16(FP), CX
	VPXORQ Z0, Z0, Z0
	VPXORQ Z3, Z3, Z3
	XORQ   AX, AX

	// two independent accumulators, 16 columns per pass
wloop16:
	LEAQ      16(AX), DX
	CMPQ      DX, CX
	JG        wloop8
	VPMOVSXDQ (SI)(AX*4), Z2
	VPMOVSXDQ 32(SI)(AX*4), Z4
	VPMULLQ   (DI)(AX*8), Z2, Z2
	VPMULLQ   64(DI)(AX*8), Z4, Z4
	VPADDQ    Z2, Z0, Z0
	VPADDQ    Z4, Z3, Z3
	MOVQ      DX, AX
	JMP       wloop16

wloop8:
	CMPQ      AX, CX
	JGE       wdone
	VPMOVSXDQ (SI)(AX*4), Z2
	VPMULLQ   (DI)(AX*8), Z2, Z2
	VPADDQ    Z2, Z0, Z0

wdone:
	VPADDQ Z3, Z0, Z0
	HSUM
	MOVQ   AX, ret+24(FP)
	VZEROUPPER
	RET

// func dotI16U64AVX512(w *int16, x *uint64, n int) uint64
TEXT ·dotI16U64AVX512(SB), NOSPLIT, $0-32
	MOVQ   w+0(FP), SI
	MOVQ   x+8(FP), DI
	MOVQ   n+16(FP), CX
	VPXORQ Z0, Z0, Z0
	VPXORQ Z3, Z3, Z3
	XORQ   AX, AX

	// two independent accumulators, 16 columns per pass
hloop16:
	LEAQ      16(AX), DX
	CMPQ      DX, CX
	JG        hloop8
	VPMOVSXWQ (SI)(AX*2), Z2
	VPMOVSXWQ 16(SI)(AX*2), Z4
	VPMULLQ   (DI)(AX*8), Z2, Z2
	VPMULLQ   64(DI)(AX*8), Z4, Z4
	VPADDQ    Z2, Z0, Z0
	VPADDQ    Z4, Z3, Z3
	MOVQ      DX, AX
	JMP       hloop16

hloop8:
	CMPQ      AX, CX
	JGE       hdone
	VPMOVSXWQ (SI)(AX*2), Z2
	VPMULLQ   (DI)(AX*8), Z2, Z2
	VPADDQ    Z2, Z0, Z0

hdone:
	VPADDQ Z3, Z0, Z0
	HSUM
	MOVQ   AX, ret+24(FP)
	VZEROUPPER
	RET
