package tensor

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestF16Conversions(t *testing.T) {
	cases := []struct {
		h uint16
		f float32
	}{
		{0x0000, 0}, {0x3c00, 1}, {0xc000, -2}, {0x7bff, 65504}, {0x3555, 0.333251953125},
		{0x0001, 5.960464477539063e-08}, {0x0400, 6.103515625e-05}, {0x7c00, float32(math.Inf(1))},
	}
	for _, c := range cases {
		if got := F16ToF32(c.h); got != c.f {
			t.Errorf("F16ToF32(%#04x) = %v, want %v", c.h, got, c.f)
		}
		if got := F32ToF16(c.f); got != c.h {
			t.Errorf("F32ToF16(%v) = %#04x, want %#04x", c.f, got, c.h)
		}
	}
	if v := F16ToF32(0x7e00); v == v {
		t.Error("f16 NaN did not convert to NaN")
	}
	// every finite f16 round-trips exactly
	for h := 0; h < 1<<16; h++ {
		if h&0x7c00 == 0x7c00 {
			continue
		}
		if back := F32ToF16(F16ToF32(uint16(h))); back != uint16(h) && !(h == 0x8000 && back == 0x8000) {
			t.Fatalf("f16 %#04x round-trips to %#04x", h, back)
		}
	}
	// round to nearest even: 1 + 2^-11 is halfway between 1 and 1+2^-10
	if F32ToF16(1+1.0/2048) != 0x3c00 || F32ToF16(1+3.0/2048) != 0x3c02 {
		t.Error("f16 rounding is not to nearest even")
	}
	if F32ToF16(1e6) != 0x7c00 || F32ToF16(1e-9) != 0 {
		t.Error("f16 overflow/underflow")
	}
}

func TestBF16Conversions(t *testing.T) {
	if BF16ToF32(0x3f80) != 1 || BF16ToF32(0xc040) != -3 {
		t.Fatal("bf16 decode")
	}
	if F32ToBF16(1) != 0x3f80 || F32ToBF16(math.Float32frombits(0x3f808000)) != 0x3f80 ||
		F32ToBF16(math.Float32frombits(0x3f818000)) != 0x3f82 {
		t.Fatal("bf16 rounding is not to nearest even")
	}
}

func TestDequantQ8Block(t *testing.T) {
	// hand-built block: d = 0.5 (f16 0x3800), q = -16..15
	blk := []byte{0x00, 0x38}
	for i := 0; i < 32; i++ {
		blk = append(blk, byte(int8(i-16)))
	}
	out := make([]float32, 32)
	if err := DequantRow(out, Q8_0, blk); err != nil {
		t.Fatal(err)
	}
	for i, v := range out {
		if v != float32(i-16)*0.5 {
			t.Fatalf("q8_0[%d] = %v, want %v", i, v, float32(i-16)*0.5)
		}
	}
	fast := make([]float32, 32)
	dequantQ8Row(fast, blk)
	for i := range fast {
		if fast[i] != out[i] {
			t.Fatal("dequantQ8Row differs from DequantRow")
		}
	}
	if err := DequantRow(make([]float32, 31), Q8_0, blk[:33]); err == nil {
		t.Fatal("q8_0 row of 31 elements accepted")
	}
	if err := DequantRow(out, Q8_0, blk[:30]); err == nil {
		t.Fatal("short q8_0 row accepted")
	}
}

func TestQuantizeRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	src := make([]float32, 256)
	for i := range src {
		src[i] = float32(r.NormFloat64())
	}
	for _, typ := range []DType{F32, F16, BF16, Q8_0} {
		b, err := QuantizeRow(nil, typ, src)
		if err != nil {
			t.Fatal(err)
		}
		if rb, _ := typ.RowBytes(len(src)); len(b) != rb {
			t.Fatalf("%v: %d bytes, want %d", typ, len(b), rb)
		}
		back := make([]float32, len(src))
		if err := DequantRow(back, typ, b); err != nil {
			t.Fatal(err)
		}
		var maxRel float64
		for i := range src {
			maxRel = math.Max(maxRel, math.Abs(float64(back[i]-src[i]))/4) // |x| <~ 4
		}
		limit := map[DType]float64{F32: 0, F16: 1e-3, BF16: 1e-2, Q8_0: 1e-2}[typ]
		if maxRel > limit {
			t.Fatalf("%v: error %v over %v", typ, maxRel, limit)
		}
	}
	// Q8_0 of a block whose max is 127*d keeps q exactly
	blk := make([]float32, 32)
	for i := range blk {
		blk[i] = float32(i-16) * 0.25
	}
	blk[31] = 127 * 0.25
	b, _ := QuantizeRow(nil, Q8_0, blk)
	if F16ToF32(binary.LittleEndian.Uint16(b)) != 0.25 || int8(b[2+31]) != 127 || int8(b[2]) != -16 {
		t.Fatal("q8_0 quantiser scale or values")
	}
}

func TestDotCanonicalOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1, 7, 16, 31, 64, 100, 172, 896} {
		a, b := make([]float32, n), make([]float32, n)
		for i := range a {
			a[i], b[i] = float32(r.NormFloat64()), float32(r.NormFloat64())
		}
		// reference: the order spelled out in the spec, each slot update
		// one exactly rounded multiply-add
		var s [16]float32
		for j := 0; j < n; j++ {
			s[j%16] = fmaBig(a[j], b[j], s[j%16])
		}
		want := reduce16(&s)
		if got := Dot(a, b); math.Float32bits(got) != math.Float32bits(want) {
			t.Fatalf("n=%d: Dot = %v, spec order gives %v", n, got, want)
		}
		var g [16]float32
		n16 := n &^ 15
		dot16Generic(a[:n16], b[:n16], &g)
		var h [16]float32
		if n16 > 0 {
			dot16(a[:n16], b[:n16], &h)
		}
		if g != h {
			t.Fatalf("n=%d: assembly and generic slots differ", n)
		}
	}
}

// fmaBig is a·b + c rounded once to float32, computed exactly with
// math/big: the reference for fma32 and the kernels' VFMADD.
func fmaBig(a, b, c float32) float32 {
	fa, fb, fc := float64(a), float64(b), float64(c)
	if math.IsInf(fa, 0) || math.IsInf(fb, 0) || math.IsInf(fc, 0) || a != a || b != b || c != c {
		return float32(fa*fb + fc)
	}
	// 1000 bits hold any sum of a float32 product and a float32 exactly
	p := new(big.Float).SetPrec(1000).SetFloat64(fa)
	p.Mul(p, new(big.Float).SetPrec(1000).SetFloat64(fb))
	p.Add(p, new(big.Float).SetPrec(1000).SetFloat64(fc))
	if p.Sign() == 0 {
		// exact zero: IEEE gives +0 unless both a·b and c are −0
		return float32(fa*fb + fc)
	}
	v, _ := p.Float32() // nearest, ties to even, subnormals included
	return v
}

// TestFMA32: the portable fused multiply-add is exactly rounded for random
// operands of every magnitude, products that cancel the addend, ties,
// subnormal results and overflow, and equals the hardware's VFMADD.
func TestFMA32(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	rnd := func() float32 {
		switch r.IntN(6) {
		case 0:
			return math.Float32frombits(r.Uint32()) // any bits
		case 1:
			return float32(r.NormFloat64()) * 1e-20
		case 2:
			return float32(r.NormFloat64()) * 1e20
		}
		return float32(r.NormFloat64())
	}
	check := func(a, b, c float32) {
		t.Helper()
		got, want := fma32(a, b, c), fmaBig(a, b, c)
		if math.Float32bits(got) != math.Float32bits(want) && !(got != got && want != want) {
			t.Fatalf("fma32(%g, %g, %g) = %g (%#x), want %g (%#x)", a, b, c, got, math.Float32bits(got), want, math.Float32bits(want))
		}
	}
	for i := 0; i < 200000; i++ {
		a, b := rnd(), rnd()
		c := rnd()
		if i%3 == 0 { // c ≈ −a·b: heavy cancellation
			c = -float32(a*b) * (1 + float32(r.IntN(5)-2)*1e-7)
		}
		check(a, b, c)
	}
	one := float32(1)
	eps := math.Float32frombits(0x34000000) // 2^-23
	for _, v := range [][3]float32{
		{1 + eps, 1 + eps, -1},            // 2ε + ε², rounding of the tiny tail
		{1 + eps, 1 - eps, -one},          // −ε², exact
		{math.Float32frombits(1), 0.5, 0}, // half the smallest subnormal: tie to even
		{3e38, 10, -3e38},                 // the product is beyond float32, the sum too
		{1e-30, 1e-30, 1e-45},
		{0, 1, 0}, {float32(math.Copysign(0, -1)), 1, float32(math.Copysign(0, -1))},
	} {
		check(v[0], v[1], v[2])
	}
	// double rounding trap: a·b + c whose float64 rounding lands on a
	// float32 tie
	check(1+eps, 1+math.Float32frombits(0x33800000), math.Float32frombits(0x3f800000))
	if useAVX2 {
		x := make([]float32, 16*4096)
		y := make([]float32, 16*4096)
		for i := range x {
			x[i], y[i] = rnd(), rnd()
		}
		var g, h [16]float32
		dot16Generic(x, y, &g)
		dot16(x, y, &h)
		for i := range g {
			if math.Float32bits(g[i]) != math.Float32bits(h[i]) && !(g[i] != g[i] && h[i] != h[i]) {
				t.Fatalf("slot %d: generic %g, VFMADD %g", i, g[i], h[i])
			}
		}
	}
}

// TestDotTails: Dot of lengths that are not multiples of 16 gives the
// spec order's bits on every kernel level, including slots that hold −0
// (tiny negative products rounding to −0), which the padded tail block
// must keep.
func TestDotTails(t *testing.T) {
	r := rand.New(rand.NewPCG(41, 42))
	levels, restore := kernelLevels()
	defer restore()
	for trial := 0; trial < 300; trial++ {
		n := 1 + r.IntN(70)
		a, b := make([]float32, n), make([]float32, n)
		for i := range a {
			a[i], b[i] = float32(r.NormFloat64()), float32(r.NormFloat64())
			if trial%3 == 0 { // products of −1e-30·1e-30: −0 in float32
				a[i], b[i] = -1e-30, 1e-30
			}
		}
		var s [16]float32
		for j := 0; j < n; j++ {
			s[j%16] = fmaBig(a[j], b[j], s[j%16])
		}
		want := reduce16(&s)
		for name, set := range levels {
			set()
			if got := Dot(a, b); math.Float32bits(got) != math.Float32bits(want) {
				t.Fatalf("%s n=%d: Dot = %v (%#x), want %v (%#x)", name, n, got, math.Float32bits(got), want, math.Float32bits(want))
			}
		}
	}
}

func TestMatMulThreadsAndTypes(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	rows, cols, n := 300, 256, 3
	w := make([]float32, rows*cols)
	for i := range w {
		w[i] = float32(r.NormFloat64())
	}
	x := make([]float32, n*cols)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	for _, typ := range []DType{F32, F16, BF16, Q8_0} {
		m := quantMat(t, typ, rows, cols, w)
		// reference: dequantise each row, canonical Dot; Q8_0: DotQ8
		want := make([]float32, n*rows)
		row := make([]float32, cols)
		for i := 0; i < rows; i++ {
			m.Row(row, i)
			for k := 0; k < n; k++ {
				want[k*rows+i] = Dot(row, x[k*cols:(k+1)*cols])
				if typ == Q8_0 {
					want[k*rows+i], _ = DotQ8(m.data[i*m.rowBytes:(i+1)*m.rowBytes], x[k*cols:(k+1)*cols])
				}
			}
		}
		for _, th := range []int{1, 2, 3, 7} {
			got := make([]float32, n*rows)
			if err := MatMul(got, m, x, n, th); err != nil {
				t.Fatal(err)
			}
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("%v threads %d: element %d differs", typ, th, i)
				}
			}
		}
	}
	if _, err := NewMat(F32, 2, 3, make([]byte, 23)); err == nil {
		t.Fatal("short matrix accepted")
	}
	if _, err := NewMat(Q8_0, 2, 33, make([]byte, 100)); err == nil {
		t.Fatal("q8_0 matrix with 33 columns accepted")
	}
}

// TestMatMulMultiAndRange checks that the fused products give the bits of
// separate MatMul calls, for odd row counts and range ends (the AVX-512 kernel
// takes rows in pairs), and that bad shapes are refused.
func TestMatMulMultiAndRange(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	cols, n := 96, 2
	x := make([]float32, n*cols)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	var ws []*Mat
	for _, rows := range []int{37, 5, 64} {
		var data []byte
		w := make([]float32, cols)
		for i := 0; i < rows; i++ {
			for j := range w {
				w[j] = float32(r.NormFloat64())
			}
			data, _ = QuantizeRow(data, Q8_0, w)
		}
		m, err := NewMat(Q8_0, rows, cols, data)
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, m)
	}
	want := make([][]float32, len(ws))
	for i, m := range ws {
		want[i] = make([]float32, n*m.Rows)
		if err := MatMul(want[i], m, x, n, 1); err != nil {
			t.Fatal(err)
		}
	}
	same := func(what string, got, want []float32) {
		t.Helper()
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%s: element %d is %v, want %v", what, i, got[i], want[i])
			}
		}
	}
	for _, th := range []int{1, 2, 3} {
		outs := make([][]float32, len(ws))
		for i, m := range ws {
			outs[i] = make([]float32, n*m.Rows)
		}
		if err := MatMulMulti(outs, ws, x, n, th); err != nil {
			t.Fatal(err)
		}
		for i := range ws {
			same(fmt.Sprintf("multi threads %d matrix %d", th, i), outs[i], want[i])
		}
	}
	m := ws[0]
	got := make([]float32, n*m.Rows)
	for _, cut := range [][2]int{{0, 3}, {3, 20}, {20, 37}, {37, 37}} {
		if err := MatMulRange(got, m, x, n, cut[0], cut[1]); err != nil {
			t.Fatal(err)
		}
	}
	same("ranges", got, want[0])
	if err := MatMulRange(got, m, x, n, 5, 38); err == nil {
		t.Fatal("range beyond the rows accepted")
	}
	other, _ := NewMat(F32, 2, 32, make([]byte, 2*32*4))
	if err := MatMulMulti([][]float32{got, make([]float32, 4)}, []*Mat{m, other}, x, n, 2); err == nil {
		t.Fatal("matrices with different column counts accepted")
	}
}

func TestDeterministicMath(t *testing.T) {
	for x := -20.0; x <= 20; x += 0.37 {
		if e, w := Exp(x), math.Exp(x); math.Abs(e-w) > 2e-16*w {
			t.Fatalf("Exp(%v) = %v, want %v", x, e, w)
		}
		if x > 0 {
			if l, w := Log(x), math.Log(x); math.Abs(l-w) > 1e-15*math.Max(1, math.Abs(w)) {
				t.Fatalf("Log(%v) = %v, want %v", x, l, w)
			}
		}
		s, c := Sincos(x * 50)
		ws, wc := math.Sincos(x * 50)
		if math.Abs(s-ws) > 1e-15 || math.Abs(c-wc) > 1e-15 {
			t.Fatalf("Sincos(%v) = %v %v, want %v %v", x*50, s, c, ws, wc)
		}
	}
	for x := float32(-87); x < 88; x += 0.173 {
		if e, w := Expf(x), math.Exp(float64(x)); math.Abs(float64(e)-w) > 3e-7*w {
			t.Fatalf("Expf(%v) = %v, want %v", x, e, w)
		}
	}
	if Expf(-100) != 0 || !math.IsInf(float64(Expf(100)), 1) || Expf(0) != 1 {
		t.Fatal("Expf limits")
	}
	if p := Pow(10000, 0.25); math.Abs(p-10) > 1e-12 {
		t.Fatalf("Pow(10000, 0.25) = %v", p)
	}
	if s, _ := Sincos(1 << 30); s == s {
		t.Fatal("Sincos beyond its range did not return NaN")
	}
}

// TestParallelForWaitsForSlowRanges: a range that runs far longer than the
// caller's spin (so the caller blocks) is still complete when ParallelFor
// returns, every time.
func TestParallelForWaitsForSlowRanges(t *testing.T) {
	for rep := 0; rep < 20; rep++ {
		var done atomic.Int32
		ParallelFor(4, 4, 1<<20, func(lo, hi int) {
			if lo > 0 {
				time.Sleep(time.Duration(rep%4) * time.Millisecond)
			}
			done.Add(int32(hi - lo))
		})
		if n := done.Load(); n != 4 {
			t.Fatalf("repetition %d: ParallelFor returned with %d of 4 items done", rep, n)
		}
	}
}

// TestParallelForManyQuickRanges: ranges that end before their caller has
// queued the next one. Several callers at once fill the job queue, so a
// caller's queueing blocks while workers finish its first ranges (this used
// to close a call's done channel twice).
func TestParallelForManyQuickRanges(t *testing.T) {
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for rep := 0; rep < 200; rep++ {
				var n atomic.Int32
				ParallelFor(100, 100, 1<<20, func(lo, hi int) { n.Add(int32(hi - lo)) })
				if n.Load() != 100 {
					errs <- fmt.Sprintf("%d of 100 items done", n.Load())
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}

func TestParallelForCoversEachItemOnce(t *testing.T) {
	for name, pf := range map[string]func(int, int, int, func(int, int)){"ParallelFor": ParallelFor, "ParallelForShared": ParallelForShared} {
		for _, items := range []int{1, 5, 100, 1001} {
			for _, th := range []int{1, 2, 3, 8} {
				seen := make([]int32, items)
				pf(items, th, 1<<20, func(lo, hi int) {
					for i := lo; i < hi; i++ {
						atomic.AddInt32(&seen[i], 1)
					}
				})
				for i, c := range seen {
					if c != 1 {
						t.Fatalf("%s items %d threads %d: item %d seen %d times", name, items, th, i, c)
					}
				}
			}
		}
	}
}

// TestParallelForSharedWaitsAndShares: while the thread holding the first
// chunk is held up (here until every other chunk is done, which a fixed
// half-and-half split would never reach), the other thread takes all the
// remaining chunks; the call returns only when every chunk is done; and
// calls back to back (workers taking jobs of calls that have already
// returned) each cover their items once.
func TestParallelForSharedWaitsAndShares(t *testing.T) {
	for rep := 0; rep < 10; rep++ {
		var done atomic.Int32
		others := make(chan struct{})
		ParallelForShared(16, 2, 1<<20, func(lo, hi int) {
			if lo == 0 {
				select {
				case <-others:
				case <-time.After(10 * time.Second):
					t.Error("the other chunks were not taken by the other thread")
				}
				time.Sleep(time.Duration(rep%3) * time.Millisecond)
			}
			// chunks of 2 items: the first is done last, so the others
			// reach 14 first, and only one thread runs them
			if done.Add(int32(hi-lo)) == 14 && lo != 0 {
				close(others)
			}
		})
		if n := done.Load(); n != 16 {
			t.Fatalf("repetition %d: returned with %d of 16 items done", rep, n)
		}
	}
	for rep := 0; rep < 2000; rep++ {
		var n atomic.Int32
		ParallelForShared(7, 3, 1<<20, func(lo, hi int) { n.Add(int32(hi - lo)) })
		if n.Load() != 7 {
			t.Fatalf("repetition %d: %d of 7 items done", rep, n.Load())
		}
	}
}
