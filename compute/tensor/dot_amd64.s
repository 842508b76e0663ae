//go:build !purego

#include "textflag.h"

// func dot16FMA(a, b *float32, blocks int, s *[16]float32)
// For each block of 16 elements: slot[i] = a[i]·b[i] + slot[i], fused
// (VFMADD231PS: one rounding), Y0 slots 0-7, Y1 slots 8-15.
TEXT ·dot16FMA(SB), NOSPLIT, $0-32
	MOVQ a+0(FP), SI
	MOVQ b+8(FP), DI
	MOVQ blocks+16(FP), CX
	MOVQ s+24(FP), DX
	VMOVUPS 0(DX), Y0
	VMOVUPS 32(DX), Y1
loop:
	VMOVUPS 0(SI), Y2
	VMOVUPS 32(SI), Y3
	VFMADD231PS 0(DI), Y2, Y0
	VFMADD231PS 32(DI), Y3, Y1
	ADDQ $64, SI
	ADDQ $64, DI
	DECQ CX
	JNZ loop
	VMOVUPS Y0, 0(DX)
	VMOVUPS Y1, 32(DX)
	VZEROUPPER
	RET
