// Package tensor owns the numeric core of the compute engine: tensor element
// types (F32, F16, BF16, Q8_0 with GGML's numbering and block layouts),
// conversion and dequantisation, deterministic elementary functions, and the
// matrix kernels every forward pass uses.
//
// Determinism contract (spec/07-model.md §6, arithmetic version 2): the
// product of an F32, F16 or BF16 weight row with an activation vector is the
// dot product of the dequantised float32 row with the float32 vector,
// accumulated in 16 slots (element j goes to slot j mod 16 with a fused
// multiply-add, one rounding) and reduced by a fixed pairwise tree; the
// product of a Q8_0 row quantises the vector to int8 per block of 32, sums
// each block exactly in integers and accumulates the scaled block sums in
// order. A row's result does not depend on the batch, the thread count or
// the kernel: the AVX-512 (VNNI) batched kernels, the AVX2 + FMA kernels
// and the portable Go code (with an exact software fma) give the same bits.
//
// Products take a Batch of activation vectors (quantised once for all the
// Q8_0 matrices that read it). A Q8_0 matrix is packed once (Pack) 16 rows
// to a group, the layout in which one VPDPBUSD multiplies four bytes of 16
// rows by four bytes of the vector; the float kernels read F32, F16 and
// BF16 rows as stored, four rows by up to six vectors at a time.
//
// Byte layouts (little-endian, as in GGUF):
//
//	F32   4 bytes per element, IEEE 754 binary32
//	F16   2 bytes per element, IEEE 754 binary16
//	BF16  2 bytes per element, the high half of a binary32
//	Q8_0  blocks of 32 elements: f16 scale d (2 bytes) then 32 int8 q; x = d*q
package tensor
