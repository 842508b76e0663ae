//go:build !purego

#include "textflag.h"
#include "vaes_amd64.h"

// func convertLeaves(rk *roundKeys, out, seeds *uint64, t *byte, final *uint64, neg uint64, leaves int)
//
// The leaf conversion of EvalAll for leaves of eight outputs (spec §3.2),
// with VAES on 512-bit registers: a leaf's four blocks G_C(s xor b),
// b < 4 in byte 15, are the four lanes of one register. For leaf j,
// out[8j+i] = ((AES(in) xor in)_i + final_i·t_j) · (neg ? -1 : 1).
// Four leaves are in flight per pass, then one at a time.
//
// Registers: Z16..Z26 the round keys broadcast to all lanes, Z27 the
// tweak (b << 56 in the high word of lane b), Z28 the final correction
// words, Z29 the sign mask (all ones when negating).

#define KEY(i, Z) VBROADCASTI32X4 (16*i)(AX), Z

// SEED loads leaf seed (soff)(SI) into all lanes of S and tweaks it.
#define SEED(soff, S) VBROADCASTI32X4 soff(SI), S; VPXORQ Z27, S, S

// FIN finishes leaf state X with input S and control byte toff(BX) and
// stores it at doff(DI).
#define FIN(X, S, toff, doff) VPXORQ S, X, X; \
	MOVBQZX toff(BX), R8; NEGQ R8; VPBROADCASTQ R8, Z9; VPANDQ Z28, Z9, Z9; \
	VPADDQ Z9, X, X; VPXORQ Z29, X, X; VPSUBQ Z29, X, X; VMOVDQU64 X, doff(DI)

TEXT ·convertLeaves(SB), NOSPLIT, $0-56
	MOVQ rk+0(FP), AX
	MOVQ out+8(FP), DI
	MOVQ seeds+16(FP), SI
	MOVQ t+24(FP), BX
	MOVQ final+32(FP), DX
	MOVQ neg+40(FP), R9
	MOVQ leaves+48(FP), CX
	KEYS_TO_Z16
	VMOVDQU64 tweak<>(SB), Z27
	VMOVDQU64 (DX), Z28
	VPBROADCASTQ R9, Z29

loop4:
	CMPQ CX, $4
	JB   loop1
	SEED(0, Z4)
	SEED(16, Z5)
	SEED(32, Z6)
	SEED(48, Z7)
	ENC4
	FIN(Z0, Z4, 0, 0)
	FIN(Z1, Z5, 1, 64)
	FIN(Z2, Z6, 2, 128)
	FIN(Z3, Z7, 3, 192)
	ADDQ $64, SI
	ADDQ $4, BX
	ADDQ $256, DI
	SUBQ $4, CX
	JMP  loop4

loop1:
	TESTQ CX, CX
	JE    done
	SEED(0, Z4)
	ENC1
	FIN(Z0, Z4, 0, 0)
	ADDQ $16, SI
	ADDQ $1, BX
	ADDQ $64, DI
	DECQ CX
	JMP  loop1

done:
	VZEROUPPER
	RET

// tweak: lane b has b << 56 in its high word (byte 15 of the block).
DATA tweak<>+0(SB)/8, $0
DATA tweak<>+8(SB)/8, $0
DATA tweak<>+16(SB)/8, $0
DATA tweak<>+24(SB)/8, $0x0100000000000000
DATA tweak<>+32(SB)/8, $0
DATA tweak<>+40(SB)/8, $0x0200000000000000
DATA tweak<>+48(SB)/8, $0
DATA tweak<>+56(SB)/8, $0x0300000000000000
GLOBL tweak<>(SB), RODATA|NOPTR, $64
