package tensor

import "math"

// Deterministic elementary functions.
//
// The standard library's math.Exp uses an FMA-based assembly routine on amd64
// machines that have FMA and a different one elsewhere, and the compiler may
// fuse a*b+c into one FMA when building for GOAMD64=v3 or for arm64. Either
// would make logits differ in the last bit between machines, which breaks
// verification by re-execution. These versions follow the FreeBSD msun
// algorithms used by Go's pure-Go fallbacks, with every product wrapped in an
// explicit float64 conversion, which the Go specification says prevents fusion.

// Exp returns e**x computed in a fixed operation order.
func Exp(x float64) float64 {
	const (
		ln2Hi     = 6.93147180369123816490e-01
		ln2Lo     = 1.90821492927058770002e-10
		log2e     = 1.44269504088896338700e+00
		overflow  = 7.09782712893383973096e+02
		underflow = -7.45133219101941108420e+02
		nearZero  = 1.0 / (1 << 28)
		p1        = 1.66666666666666657415e-01
		p2        = -2.77777777770155933842e-03
		p3        = 6.61375632143793436117e-05
		p4        = -1.65339022054652515390e-06
		p5        = 4.13813679705723846039e-08
	)
	switch {
	case x != x:
		return x
	case x > overflow:
		return math.Inf(1)
	case x < underflow:
		return 0
	case -nearZero < x && x < nearZero:
		return 1 + x
	}
	var k int
	switch {
	case x < 0:
		k = int(float64(log2e*x) - 0.5)
	case x > 0:
		k = int(float64(log2e*x) + 0.5)
	}
	hi := x - float64(float64(k)*ln2Hi)
	lo := float64(float64(k) * ln2Lo)
	r := hi - lo
	t := float64(r * r)
	poly := p4 + float64(t*p5)
	poly = p3 + float64(t*poly)
	poly = p2 + float64(t*poly)
	poly = p1 + float64(t*poly)
	c := r - float64(t*poly)
	y := 1 - ((lo - float64(r*c)/(2-c)) - hi)
	return math.Ldexp(y, k)
}

// Log returns the natural logarithm of x computed in a fixed operation order.
func Log(x float64) float64 {
	const (
		ln2Hi = 6.93147180369123816490e-01
		ln2Lo = 1.90821492927058770002e-10
		l1    = 6.666666666666735130e-01
		l2    = 3.999999999940941908e-01
		l3    = 2.857142874366239149e-01
		l4    = 2.222219843214978396e-01
		l5    = 1.818357216161805012e-01
		l6    = 1.531383769920937332e-01
		l7    = 1.479819860511658591e-01
	)
	switch {
	case x != x || math.IsInf(x, 1):
		return x
	case x < 0:
		return math.NaN()
	case x == 0:
		return math.Inf(-1)
	}
	f1, ki := math.Frexp(x)
	if f1 < math.Sqrt2/2 {
		f1 *= 2
		ki--
	}
	f := f1 - 1
	k := float64(ki)
	s := f / (2 + f)
	s2 := float64(s * s)
	s4 := float64(s2 * s2)
	t1 := l5 + float64(s4*l7)
	t1 = l3 + float64(s4*t1)
	t1 = l1 + float64(s4*t1)
	t1 = float64(s2 * t1)
	t2 := l4 + float64(s4*l6)
	t2 = l2 + float64(s4*t2)
	t2 = float64(s4 * t2)
	r := t1 + t2
	hfsq := float64(float64(0.5*f) * f)
	return float64(k*ln2Hi) - ((hfsq - (float64(s*(hfsq+r)) + float64(k*ln2Lo))) - f)
}

// Pow returns x**y for x > 0 as Exp(y*Log(x)), in a fixed operation order.
// It is meant for rope frequencies, not as a general replacement of math.Pow.
func Pow(x, y float64) float64 {
	if x == 1 || y == 0 {
		return 1
	}
	return Exp(float64(y * Log(x)))
}

var sinCoef = [...]float64{
	1.58962301576546568060e-10,
	-2.50507477628578072866e-8,
	2.75573136213857245213e-6,
	-1.98412698295895385996e-4,
	8.33333333332211858878e-3,
	-1.66666666666666307295e-1,
}

var cosCoef = [...]float64{
	-1.13585365213876817300e-11,
	2.08757008419747316778e-9,
	-2.75573141792967388112e-7,
	2.48015872888517045348e-5,
	-1.38888888888730564116e-3,
	4.16666666666665929218e-2,
}

// maxTrigArg bounds the argument of Sincos; beyond it the Cody-Waite
// reduction loses precision. Rope angles are position*frequency with
// frequency <= 1 and positions far below this bound.
const maxTrigArg = 1 << 29

// Sincos returns sin(x) and cos(x) in a fixed operation order. Arguments with
// |x| >= 2**29 or NaN/Inf return NaN.
func Sincos(x float64) (sin, cos float64) {
	const (
		pi4a = 7.85398125648498535156e-1
		pi4b = 3.77489470793079817668e-8
		pi4c = 2.69515142907905952645e-15
	)
	if x == 0 {
		return x, 1
	}
	if x != x || x >= maxTrigArg || x <= -maxTrigArg {
		return math.NaN(), math.NaN()
	}
	sinSign, cosSign := false, false
	if x < 0 {
		x = -x
		sinSign = true
	}
	j := uint64(float64(x * (4 / math.Pi)))
	y := float64(j)
	if j&1 == 1 {
		j++
		y++
	}
	j &= 7
	if j > 3 {
		j -= 4
		sinSign, cosSign = !sinSign, !cosSign
	}
	if j > 1 {
		cosSign = !cosSign
	}
	z := ((x - float64(y*pi4a)) - float64(y*pi4b)) - float64(y*pi4c)
	zz := float64(z * z)
	pc := cosCoef[0]
	for _, c := range cosCoef[1:] {
		pc = float64(pc*zz) + c
	}
	ps := sinCoef[0]
	for _, c := range sinCoef[1:] {
		ps = float64(ps*zz) + c
	}
	cv := 1.0 - float64(0.5*zz) + float64(float64(zz*zz)*pc)
	sv := z + float64(float64(z*zz)*ps)
	if j == 1 || j == 2 {
		sin, cos = cv, sv
	} else {
		sin, cos = sv, cv
	}
	if cosSign {
		cos = -cos
	}
	if sinSign {
		sin = -sin
	}
	return sin, cos
}

// Expf returns e**x in float32, computed in a fixed operation order
// (Cephes expf: x = n·ln2 + r, degree-6 polynomial in r, scaled by 2**n).
// Relative error is below 2**-22. Results below 2**-126 flush to zero; above
// the float32 range they are +Inf.
func Expf(x float32) float32 {
	const (
		log2e = 1.44269504088896341
		c1    = 0.693359375
		c2    = -2.12194440e-4
		p0    = 1.9875691500e-4
		p1    = 1.3981999507e-3
		p2    = 8.3334519073e-3
		p3    = 4.1665795894e-2
		p4    = 1.6666665459e-1
		p5    = 5.0000001201e-1
	)
	switch {
	case x != x:
		return x
	case x > 88.72:
		return float32(math.Inf(1))
	case x < -87.33:
		return 0
	}
	fx := float32(x*log2e) + 0.5
	n := int32(fx)
	if float32(n) > fx { // floor for negative values
		n--
	}
	fn := float32(n)
	r := x - float32(fn*c1)
	r -= float32(fn * c2)
	z := float32(r * r)
	y := float32(p0*r) + p1
	y = float32(y*r) + p2
	y = float32(y*r) + p3
	y = float32(y*r) + p4
	y = float32(y*r) + p5
	y = float32(y*z) + r + 1
	if n < -126 { // x near -87.33: scale in two steps to stay normal
		return float32(y*math.Float32frombits(uint32(n+127+64)<<23)) * math.Float32frombits(uint32(127-64)<<23)
	}
	if n > 127 {
		return float32(y*math.Float32frombits(uint32(n-1+127)<<23)) * 2
	}
	return y * math.Float32frombits(uint32(n+127)<<23)
}
