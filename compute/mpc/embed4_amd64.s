#include "textflag.h"

// func embed4AVX512(acc *uint64, accHi *uint32, r0, r1, r2, r3 *int16, y *uint64, n int)
//
// Sixteen columns per pass of the four-row embedding inner product, for n a
// multiple of 16. Each share y_k is split as y_k = lo_k + 2^32·hi_k with
// lo_k its low 32 bits read as signed. Then y_k·r = lo_k·r + 2^32·(hi_k·r
// mod 2^32) mod 2^64: lo_k·r is exact in 64 bits (VPMULDQ, which multiplies
// the signed low halves of 64-bit lanes, one micro-op) and hi_k·r is only
// needed mod 2^32 (VPMULLD, sixteen lanes at once), where VPMULLQ would
// spend three micro-ops per eight lanes. acc[i] += sum_k lo_k·r_k[i] and
// accHi[i] += sum_k hi_k·r_k[i] mod 2^32; the caller adds accHi[i]·2^32
// once at the end, which gives the bits of the portable loop.
//
// Registers: Z0..Z3 y_k broadcast (VPMULDQ reads lo_k from them), Z4..Z7
// hi_k broadcast, BX the column.

#define HI(off, Z) MOVQ off(SI), AX; MOVLQSX AX, DX; SUBQ DX, AX; SHRQ $32, AX; VPBROADCASTD AX, Z

// ROW multiplies row R's sixteen columns into Z8, Z9 (low products, columns
// 0-7 and 8-15) and Z10 (high products) with temporaries T0..T2.
#define ROW(R, L, H, T0, T1, T2) \
	VPMOVSXWQ (R)(BX*2), T0; VPMOVSXWQ 16(R)(BX*2), T1; VPMOVSXWD (R)(BX*2), T2; \
	VPMULDQ L, T0, T0; VPMULDQ L, T1, T1; VPMULLD H, T2, T2; \
	VPADDQ T0, Z8, Z8; VPADDQ T1, Z9, Z9; VPADDD T2, Z10, Z10

TEXT ·embed4AVX512(SB), NOSPLIT, $0-64
	MOVQ acc+0(FP), DI
	MOVQ accHi+8(FP), R12
	MOVQ r0+16(FP), R8
	MOVQ r1+24(FP), R9
	MOVQ r2+32(FP), R10
	MOVQ r3+40(FP), R11
	MOVQ y+48(FP), SI
	MOVQ n+56(FP), CX
	VPBROADCASTQ 0(SI), Z0
	VPBROADCASTQ 8(SI), Z1
	VPBROADCASTQ 16(SI), Z2
	VPBROADCASTQ 24(SI), Z3
	HI(0, Z4)
	HI(8, Z5)
	HI(16, Z6)
	HI(24, Z7)
	// R13: four rows ahead, where the next pass's rows are (the rows are
	// consecutive, so r1 - r0 is the row stride); they are prefetched as
	// this pass reads its own.
	MOVQ R9, R13
	SUBQ R8, R13
	SHLQ $2, R13
	XORQ BX, BX

loop:
	CMPQ BX, CX
	JGE  done
	LEAQ       (R8)(R13*1), AX
	PREFETCHT0 (AX)(BX*2)
	LEAQ       (R9)(R13*1), AX
	PREFETCHT0 (AX)(BX*2)
	LEAQ       (R10)(R13*1), AX
	PREFETCHT0 (AX)(BX*2)
	LEAQ       (R11)(R13*1), AX
	PREFETCHT0 (AX)(BX*2)
	VMOVDQU64 (DI)(BX*8), Z8
	VMOVDQU64 64(DI)(BX*8), Z9
	VMOVDQU32 (R12)(BX*4), Z10
	ROW(R8, Z0, Z4, Z11, Z12, Z13)
	ROW(R9, Z1, Z5, Z14, Z15, Z16)
	ROW(R10, Z2, Z6, Z17, Z18, Z19)
	ROW(R11, Z3, Z7, Z20, Z21, Z22)
	VMOVDQU64 Z8, (DI)(BX*8)
	VMOVDQU64 Z9, 64(DI)(BX*8)
	VMOVDQU32 Z10, (R12)(BX*4)
	ADDQ      $16, BX
	JMP       loop

done:
	VZEROUPPER
	RET
