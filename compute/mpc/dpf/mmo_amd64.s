//go:build !purego

#include "textflag.h"

// func mmoBlocks(rk *roundKeys, dst, src *uint64, n, stride int)
//
// Eight blocks in flight so the AES unit's latency is hidden; round keys 0
// and 10 stay in X15 and X14, the others are loaded into X8 once per round
// of eight blocks.

#define ROUND8(off) MOVOU off(AX), X8; \
	AESENC X8, X0; AESENC X8, X1; AESENC X8, X2; AESENC X8, X3; \
	AESENC X8, X4; AESENC X8, X5; AESENC X8, X6; AESENC X8, X7

#define ROUND1(off) MOVOU off(AX), X8; AESENC X8, X0

// LOAD loads block soff(SI) into B and applies round key 0.
#define LOAD(soff, B) MOVOU soff(SI), B; PXOR X15, B

// STORE finishes block soff(SI) in B (MMO feed-forward) and stores it at
// (DI), then steps DI by the stride.
#define STORE(soff, B) MOVOU soff(SI), X8; PXOR X8, B; MOVOU B, (DI); ADDQ DX, DI

TEXT ·mmoBlocks(SB), NOSPLIT, $0-40
	MOVQ rk+0(FP), AX
	MOVQ dst+8(FP), DI
	MOVQ src+16(FP), SI
	MOVQ n+24(FP), CX
	MOVQ stride+32(FP), DX
	MOVOU 0(AX), X15
	MOVOU 160(AX), X14

loop8:
	CMPQ CX, $8
	JB   loop1
	LOAD(0, X0)
	LOAD(16, X1)
	LOAD(32, X2)
	LOAD(48, X3)
	LOAD(64, X4)
	LOAD(80, X5)
	LOAD(96, X6)
	LOAD(112, X7)
	ROUND8(16)
	ROUND8(32)
	ROUND8(48)
	ROUND8(64)
	ROUND8(80)
	ROUND8(96)
	ROUND8(112)
	ROUND8(128)
	ROUND8(144)
	AESENCLAST X14, X0
	AESENCLAST X14, X1
	AESENCLAST X14, X2
	AESENCLAST X14, X3
	AESENCLAST X14, X4
	AESENCLAST X14, X5
	AESENCLAST X14, X6
	AESENCLAST X14, X7
	STORE(0, X0)
	STORE(16, X1)
	STORE(32, X2)
	STORE(48, X3)
	STORE(64, X4)
	STORE(80, X5)
	STORE(96, X6)
	STORE(112, X7)
	ADDQ $128, SI
	SUBQ $8, CX
	JMP  loop8

loop1:
	TESTQ CX, CX
	JE    done
	LOAD(0, X0)
	ROUND1(16)
	ROUND1(32)
	ROUND1(48)
	ROUND1(64)
	ROUND1(80)
	ROUND1(96)
	ROUND1(112)
	ROUND1(128)
	ROUND1(144)
	AESENCLAST X14, X0
	STORE(0, X0)
	ADDQ $16, SI
	DECQ CX
	JMP  loop1

done:
	RET
