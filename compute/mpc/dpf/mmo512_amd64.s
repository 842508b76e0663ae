//go:build !purego

#include "textflag.h"
#include "vaes_amd64.h"

// func mmoBlocks512(rk *roundKeys, dst, src *uint64, n int)
//
// mmoBlocks for contiguous outputs (stride 16 bytes) with VAES on 512-bit
// registers: sixteen blocks per pass, four per register, for n a multiple
// of 16; dst[i] = AES(rk, src[i]) xor src[i]. All sixteen inputs are
// loaded before any output is stored, so dst may be src.

#define KEY(i, Z) VBROADCASTI32X4 (16*i)(AX), Z

TEXT ·mmoBlocks512(SB), NOSPLIT, $0-32
	MOVQ rk+0(FP), AX
	MOVQ dst+8(FP), DI
	MOVQ src+16(FP), SI
	MOVQ n+24(FP), CX
	KEYS_TO_Z16

loop:
	CMPQ      CX, $16
	JB        done
	VMOVDQU64 0(SI), Z4
	VMOVDQU64 64(SI), Z5
	VMOVDQU64 128(SI), Z6
	VMOVDQU64 192(SI), Z7
	ENC4
	VPXORQ    Z4, Z0, Z0
	VPXORQ    Z5, Z1, Z1
	VPXORQ    Z6, Z2, Z2
	VPXORQ    Z7, Z3, Z3
	VMOVDQU64 Z0, 0(DI)
	VMOVDQU64 Z1, 64(DI)
	VMOVDQU64 Z2, 128(DI)
	VMOVDQU64 Z3, 192(DI)
	ADDQ      $256, SI
	ADDQ      $256, DI
	SUBQ      $16, CX
	JMP       loop

done:
	VZEROUPPER
	RET
