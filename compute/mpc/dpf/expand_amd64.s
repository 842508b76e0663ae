//go:build !purego

#include "textflag.h"

// func expandPairs(rkL, rkR *roundKeys, cur *uint64, curT *byte, next *uint64, nextT *byte, pairs int, cw *levelCW)
//
// One level of full-domain DPF evaluation for pairs parents (aes.go): for
// parent j with seed s = cur[2j:2j+2] and control bit t = curT[j], the
// children L = AES(rkL, s) ^ s and R = AES(rkR, s) ^ s each get the seed
// correction word when t is set, their control bit (their low bit before
// the correction, xor t & the control correction word) goes to nextT[2j],
// nextT[2j+1], and their seeds, low bit cleared, to next[4j:4j+4]. Four
// parents (eight AES blocks) are in flight at a time.
//
// Registers: AX rkL, R12 rkR, SI cur, BX curT, DI next, DX nextT, CX pairs
// left, R13 cw; X8/X9 the round keys of the round, X12 the seed correction
// word, X13 the mask that clears bit 0.

// KEYS loads round key off of both PRG keys.
#define KEYS(off) MOVOU off(AX), X8; MOVOU off(R12), X9

// START loads parent seed at soff into L and R and applies round key 0.
#define START(soff, L, R) MOVOU soff(SI), L; MOVO L, R; PXOR X8, L; PXOR X9, R

#define ROUND4(off) KEYS(off); \
	AESENC X8, X0; AESENC X8, X1; AESENC X8, X2; AESENC X8, X3; \
	AESENC X9, X4; AESENC X9, X5; AESENC X9, X6; AESENC X9, X7

#define LAST4 KEYS(160); \
	AESENCLAST X8, X0; AESENCLAST X8, X1; AESENCLAST X8, X2; AESENCLAST X8, X3; \
	AESENCLAST X9, X4; AESENCLAST X9, X5; AESENCLAST X9, X6; AESENCLAST X9, X7

#define ROUND1(off) KEYS(off); AESENC X8, X0; AESENC X9, X4

// FINISH completes parent j (seed at soff(SI), control bit at toff(BX)):
// MMO feed-forward, control bits, correction word, stores at doff(DI) and
// noff(DX).
#define FINISH(soff, toff, doff, noff, L, R) \
	MOVOU soff(SI), X10; PXOR X10, L; PXOR X10, R; \
	MOVBQZX toff(BX), R8; NEGQ R8; \
	MOVQ R8, X11; PUNPCKLQDQ X11, X11; PAND X12, X11; \
	MOVQ L, R9; MOVQ R, R10; \
	PXOR X11, L; PXOR X11, R; PAND X13, L; PAND X13, R; \
	MOVOU L, doff(DI); MOVOU R, (doff+16)(DI); \
	MOVQ 16(R13), R11; ANDQ R8, R11; ANDQ $1, R9; XORQ R9, R11; MOVB R11, noff(DX); \
	MOVQ 24(R13), R11; ANDQ R8, R11; ANDQ $1, R10; XORQ R10, R11; MOVB R11, (noff+1)(DX)

TEXT ·expandPairs(SB), NOSPLIT, $0-64
	MOVQ rkL+0(FP), AX
	MOVQ rkR+8(FP), R12
	MOVQ cur+16(FP), SI
	MOVQ curT+24(FP), BX
	MOVQ next+32(FP), DI
	MOVQ nextT+40(FP), DX
	MOVQ pairs+48(FP), CX
	MOVQ cw+56(FP), R13
	MOVOU 0(R13), X12
	MOVQ $-2, R8
	MOVQ R8, X13
	PCMPEQL X14, X14
	PUNPCKLQDQ X14, X13 // clears bit 0 of byte 0 only

loop4:
	CMPQ CX, $4
	JB   loop1
	KEYS(0)
	START(0, X0, X4)
	START(16, X1, X5)
	START(32, X2, X6)
	START(48, X3, X7)
	ROUND4(16)
	ROUND4(32)
	ROUND4(48)
	ROUND4(64)
	ROUND4(80)
	ROUND4(96)
	ROUND4(112)
	ROUND4(128)
	ROUND4(144)
	LAST4
	FINISH(0, 0, 0, 0, X0, X4)
	FINISH(16, 1, 32, 2, X1, X5)
	FINISH(32, 2, 64, 4, X2, X6)
	FINISH(48, 3, 96, 6, X3, X7)
	ADDQ $64, SI
	ADDQ $4, BX
	ADDQ $128, DI
	ADDQ $8, DX
	SUBQ $4, CX
	JMP  loop4

loop1:
	TESTQ CX, CX
	JE    done
	KEYS(0)
	START(0, X0, X4)
	ROUND1(16)
	ROUND1(32)
	ROUND1(48)
	ROUND1(64)
	ROUND1(80)
	ROUND1(96)
	ROUND1(112)
	ROUND1(128)
	ROUND1(144)
	KEYS(160)
	AESENCLAST X8, X0
	AESENCLAST X9, X4
	FINISH(0, 0, 0, 0, X0, X4)
	ADDQ $16, SI
	ADDQ $1, BX
	ADDQ $32, DI
	ADDQ $2, DX
	DECQ CX
	JMP  loop1

done:
	RET
