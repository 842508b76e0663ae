//go:build !purego

package tensor

// The attention kernels of gemm_avx512_amd64.s (gen_kernels.go), called
// directly; each wrapper reports how much it did and the caller does the
// rest with the portable code (attn.go), as on other architectures and with
// the purego tag (attn_other.go).

// siluAsm is Silu on the AVX-512 kernel for the first len(g) &^ 15 values
// (len(u) ≥ len(g)); it returns how many it did: 0 without AVX-512.
func siluAsm(g, u []float32) int {
	n16 := len(g) &^ 15
	if !useAVX512 || n16 == 0 {
		return 0
	}
	_ = u[n16-1]
	siluAVX512(&g[0], &u[0], n16)
	return n16
}

// attendAsm is attend on the AVX-512 kernels, a lane per query (the caller
// has checked kc and vc against n, ld and hd). It reports false, having
// done nothing, without AVX-512.
func attendAsm(out []float32, ldo int, q []float32, ldq int, kc, vc []float32, ld, p0, nl, n, hd int, scale float32, sc *AttnScratch) bool {
	if !useAVX512 {
		return false
	}
	// one buffer: 16 lanes of hd query values, n scores, hd outputs
	sc.s = grow(sc.s, 16*(hd+n+hd))
	qT, s, outT := sc.s[:16*hd], sc.s[16*hd:16*(hd+n)], sc.s[16*(hd+n):]
	clear(qT)
	for l := 0; l < nl; l++ {
		for i, v := range q[l*ldq : l*ldq+hd] {
			qT[16*i+l] = v
		}
	}
	// scores, keys in blocks of 8 then one by one
	n8 := n / 8
	if n8 > 0 {
		attnScoresK8(&qT[0], &kc[0], 4*ld, hd, &s[0], &scale, n8)
	}
	if n8*8 < n {
		attnScoresK1(&qT[0], &kc[8*n8*ld], 4*ld, hd, &s[16*8*n8], &scale, n-8*n8)
	}
	softmaxT(&s[0], n, p0)
	for d, ci := 0, 0; d < hd; {
		for valueChunks[ci] > hd-d {
			ci++
		}
		attnValueKernels[ci](&s[0], &vc[d], 4*ld, n, &outT[16*d], p0)
		d += valueChunks[ci]
	}
	for l := 0; l < nl; l++ {
		o := out[l*ldo : l*ldo+hd]
		for d := range o {
			o[d] = outT[16*d+l]
		}
	}
	return true
}

// valuesAsm is AttendValues (a not empty, v checked) on the AVX-512
// kernels for the first dimensions, 64 or 16 at a time; it returns how many
// it did: 0 without AVX-512.
func valuesAsm(out, a, v []float32, ld int) int {
	hd, d := len(out), 0
	if !useAVX512 {
		return 0
	}
	for ; d+64 <= hd; d += 64 {
		rowValuesD64(&a[0], &v[d], 4*ld, len(a), &out[d])
	}
	for ; d+16 <= hd; d += 16 {
		rowValuesD16(&a[0], &v[d], 4*ld, len(a), &out[d])
	}
	return d
}
