//go:build !purego

#include "textflag.h"
#include "vaes_amd64.h"

// func expandParents512(rkL, rkR *roundKeys, cur *uint64, curT *byte, next *uint64, nextT *byte, parents int, cw *levelCW)
//
// expandPairs (expand_amd64.s) with VAES on 512-bit registers, for an even
// number of parents: one register holds two parents' children as its four
// lanes, [L(j), R(j), L(j+1), R(j+1)], which is also their order in next,
// and the round keys alternate the two PRG keys lane by lane. Four
// registers (eight parents) are in flight per pass, then one.
//
// Registers: Z16..Z26 the round keys, Z12 the seed correction word in every
// lane, Z13 the mask that clears bit 0 of each seed, Z14 bit 0 of each
// lane's low word; R12 the control-bit corrections tl | tr<<8.

// KEY builds round key i: lanes [rkL_i, rkR_i, rkL_i, rkR_i].
#define KEY(i, Z) VMOVDQU (16*i)(AX), X8; VINSERTI128 $1, (16*i)(R12), Y8, Y8; VSHUFI64X2 $0x44, Z8, Z8, Z

// SEEDS loads parents j, j+1 (32 bytes at soff(SI)) as [s_j, s_j, s_j+1, s_j+1] into S.
#define SEEDS(soff, S) VMOVDQU64 soff(SI), Y8; VSHUFI64X2 $0x50, Z8, Z8, S

// FIN completes the register X of the parents at toff(BX) whose seeds are
// S: MMO feed-forward, the children's control bits (their low bit xor
// t & the control correction) to noff(DX), the seed correction where the
// parent's t is set, bit 0 cleared, seeds to doff(DI).
#define FIN(X, S, toff, doff, noff) VPXORQ S, X, X; \
	VPTESTMQ Z14, X, K2; KMOVB K2, R9; \
	MOVWLZX toff(BX), R10; \
	MOVL R10, R11; ANDL $1, R11; IMUL3L $0x0F, R11, R11; \
	MOVL R10, R8; SHRL $8, R8; ANDL $1, R8; IMUL3L $0xF0, R8, R8; ORL R8, R11; \
	KMOVB R11, K1; VPXORQ Z12, X, K1, X; VPANDQ Z13, X, X; VMOVDQU64 X, doff(DI); \
	MOVL R9, R8; ANDL $1, R8; \
	MOVL R9, R11; ANDL $4, R11; SHLL $6, R11; ORL R11, R8; \
	MOVL R9, R11; ANDL $16, R11; SHLL $12, R11; ORL R11, R8; \
	ANDL $64, R9; SHLL $18, R9; ORL R9, R8; \
	MOVL R10, R11; ANDL $1, R11; ANDL $0x100, R10; SHLL $8, R10; ORL R10, R11; IMULL R12, R11; \
	XORL R11, R8; MOVL R8, noff(DX)

TEXT ·expandParents512(SB), NOSPLIT, $0-64
	MOVQ rkL+0(FP), AX
	MOVQ rkR+8(FP), R12
	MOVQ cur+16(FP), SI
	MOVQ curT+24(FP), BX
	MOVQ next+32(FP), DI
	MOVQ nextT+40(FP), DX
	MOVQ parents+48(FP), CX
	MOVQ cw+56(FP), R13
	KEYS_TO_Z16
	VBROADCASTI32X4 0(R13), Z12
	VMOVDQU64 clear<>(SB), Z13
	VMOVDQU64 lowbit<>(SB), Z14
	MOVQ 24(R13), R12
	SHLQ $8, R12
	ORQ  16(R13), R12

loop8:
	CMPQ CX, $8
	JB   loop2
	SEEDS(0, Z4)
	SEEDS(32, Z5)
	SEEDS(64, Z6)
	SEEDS(96, Z7)
	ENC4
	FIN(Z0, Z4, 0, 0, 0)
	FIN(Z1, Z5, 2, 64, 4)
	FIN(Z2, Z6, 4, 128, 8)
	FIN(Z3, Z7, 6, 192, 12)
	ADDQ $128, SI
	ADDQ $8, BX
	ADDQ $256, DI
	ADDQ $16, DX
	SUBQ $8, CX
	JMP  loop8

loop2:
	CMPQ CX, $2
	JB   done
	SEEDS(0, Z4)
	ENC1
	FIN(Z0, Z4, 0, 0, 0)
	ADDQ $32, SI
	ADDQ $2, BX
	ADDQ $64, DI
	ADDQ $4, DX
	SUBQ $2, CX
	JMP  loop2

done:
	VZEROUPPER
	RET

// clear: all ones but bit 0 of each lane's low word.
DATA clear<>+0(SB)/8, $0xfffffffffffffffe
DATA clear<>+8(SB)/8, $0xffffffffffffffff
DATA clear<>+16(SB)/8, $0xfffffffffffffffe
DATA clear<>+24(SB)/8, $0xffffffffffffffff
DATA clear<>+32(SB)/8, $0xfffffffffffffffe
DATA clear<>+40(SB)/8, $0xffffffffffffffff
DATA clear<>+48(SB)/8, $0xfffffffffffffffe
DATA clear<>+56(SB)/8, $0xffffffffffffffff
GLOBL clear<>(SB), RODATA|NOPTR, $64

// lowbit: bit 0 of each lane's low word.
DATA lowbit<>+0(SB)/8, $1
DATA lowbit<>+8(SB)/8, $0
DATA lowbit<>+16(SB)/8, $1
DATA lowbit<>+24(SB)/8, $0
DATA lowbit<>+32(SB)/8, $1
DATA lowbit<>+40(SB)/8, $0
DATA lowbit<>+48(SB)/8, $1
DATA lowbit<>+56(SB)/8, $0
GLOBL lowbit<>(SB), RODATA|NOPTR, $64
