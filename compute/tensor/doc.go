// Package tensor owns the numeric core of the compute engine: tensor element
// types (F32, F16, BF16, Q8_0 with GGML's numbering and block layouts),
// conversion and dequantisation, deterministic elementary functions, and the
// matrix kernels every forward pass uses.
//
// Determinism contract (spec/07-model.md §6): every dot product of a weight
// row with an activation vector is defined as the dot product of the
// dequantised float32 row with the float32 vector, accumulated in 16 slots
// (element j goes to slot j mod 16, each product rounded to float32 before the
// addition) and reduced by a fixed pairwise tree. A row is always computed by
// exactly one goroutine, so the result does not depend on the thread count,
// and no fused multiply-add is ever used, so it does not depend on the
// machine.
//
// Byte layouts (little-endian, as in GGUF):
//
//	F32   4 bytes per element, IEEE 754 binary32
//	F16   2 bytes per element, IEEE 754 binary16
//	BF16  2 bytes per element, the high half of a binary32
//	Q8_0  blocks of 32 elements: f16 scale d (2 bytes) then 32 int8 q; x = d*q
package tensor
