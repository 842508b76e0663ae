// Shared by the VAES kernels (leaves_amd64.s, expand512_amd64.s): AES-128
// on four 512-bit registers at once (sixteen blocks in flight) or on one,
// with the eleven round keys in Z16..Z26, already laid out per lane.

// KEYS_TO_Z16 loads round keys 0..10 with KEY(i, Z), a kernel's own macro
// (every lane one key, or the lanes alternating two).
#define KEYS_TO_Z16 KEY(0, Z16); KEY(1, Z17); KEY(2, Z18); KEY(3, Z19); KEY(4, Z20); \
	KEY(5, Z21); KEY(6, Z22); KEY(7, Z23); KEY(8, Z24); KEY(9, Z25); KEY(10, Z26)

#define R4(K) VAESENC K, Z0, Z0; VAESENC K, Z1, Z1; VAESENC K, Z2, Z2; VAESENC K, Z3, Z3

// ENC4 encrypts Z4..Z7 into Z0..Z3 (the inputs stay for the feed-forward).
#define ENC4 VPXORQ Z16, Z4, Z0; VPXORQ Z16, Z5, Z1; VPXORQ Z16, Z6, Z2; VPXORQ Z16, Z7, Z3; \
	R4(Z17); R4(Z18); R4(Z19); R4(Z20); R4(Z21); R4(Z22); R4(Z23); R4(Z24); R4(Z25); \
	VAESENCLAST Z26, Z0, Z0; VAESENCLAST Z26, Z1, Z1; VAESENCLAST Z26, Z2, Z2; VAESENCLAST Z26, Z3, Z3

// ENC1 encrypts Z4 into Z0.
#define ENC1 VPXORQ Z16, Z4, Z0; VAESENC Z17, Z0, Z0; VAESENC Z18, Z0, Z0; VAESENC Z19, Z0, Z0; \
	VAESENC Z20, Z0, Z0; VAESENC Z21, Z0, Z0; VAESENC Z22, Z0, Z0; VAESENC Z23, Z0, Z0; \
	VAESENC Z24, Z0, Z0; VAESENC Z25, Z0, Z0; VAESENCLAST Z26, Z0, Z0
