package mpc

import "math"

// Frac is the number of fractional bits of the fixed-point format: a real
// value v is the ring element round(v * 2^Frac) mod 2^64 (spec §4.1). Products
// carry 2*Frac or 3*Frac fractional bits until truncated.
const Frac = 16

// OutScale is the number of fractional bits of the output shares.
const OutScale = 3 * Frac

func fix(v float64, scale uint) uint64 {
	return uint64(int64(math.Round(v * math.Ldexp(1, int(scale)))))
}

func unfix(x uint64, scale uint) float64 {
	return math.Ldexp(float64(int64(x)), -int(scale))
}

// lutSpec describes one masked lookup table over an n-bit window of the
// input: index i (mod 2^Bits) stands for the input value
// i*2^Shift/2^InScale - Offset, with i read as signed when Signed is set.
type lutSpec struct {
	Bits    int
	Shift   uint    // bits dropped from the input
	InScale uint    // fractional bits of the input
	Offset  float64 // added to the input before the window is taken
	Signed  bool
}

// point returns the input value that index i stands for.
func (s lutSpec) point(i int) float64 {
	if s.Signed && i >= 1<<uint(s.Bits-1) {
		i -= 1 << uint(s.Bits)
	}
	return math.Ldexp(float64(i), int(s.Shift)-int(s.InScale)) - s.Offset
}

// table builds a table of f at scale Frac.
func (s lutSpec) table(f func(float64) float64) []uint64 {
	t := make([]uint64, 1<<uint(s.Bits))
	for i := range t {
		t[i] = fix(f(s.point(i)), Frac)
	}
	return t
}

// Params fixes the approximations; the dealer and both parties must use the
// same values (they enter the configuration hash). The zero value means the
// defaults below.
type Params struct {
	// ExpBits is the LUT width for exp in softmax (default 13): the window
	// [-ExpRange+ExpMax, ExpMax) is covered at resolution 2*ExpRange/2^ExpBits.
	ExpBits int
	// SiLUBits is the LUT width for SiLU (default 12) over [-SiLURange, SiLURange).
	SiLUBits int
	// WideBits is the LUT width of each level of the reciprocal and rsqrt
	// lookups (default 14).
	WideBits int
}

const (
	expMax    = 16.0 // largest softmax argument s_j - s_t the table covers
	expRange  = 16.0 // half width of the exp window
	siluRange = 16.0
	wideStep  = 4 // bits between the shifts of consecutive wide-LUT levels
)

func (p Params) withDefaults() Params {
	if p.ExpBits == 0 {
		p.ExpBits = 13
	}
	if p.SiLUBits == 0 {
		p.SiLUBits = 12
	}
	if p.WideBits == 0 {
		p.WideBits = 14
	}
	return p
}

// shiftFor returns the shift that maps an input at scale inScale onto a
// window of 2^bits entries covering [-half, half).
func shiftFor(inScale uint, bits int, half float64) uint {
	// resolution 2*half/2^bits = 2^(shift-inScale)
	e := math.Log2(2*half) - float64(bits)
	return uint(int(inScale) + int(math.Round(e)))
}

func (p Params) expSpec() lutSpec {
	return lutSpec{Bits: p.ExpBits, InScale: 2 * Frac, Shift: shiftFor(2*Frac, p.ExpBits, expRange), Offset: expRange - expMax, Signed: true}
}

// coarseSpec is the wide, coarse window (resolution 1/2 over [-1024, 1024))
// used to detect inputs outside the fine window of exp and SiLU (spec §6.5).
func coarseSpec(inScale uint) lutSpec {
	return lutSpec{Bits: 12, InScale: inScale, Shift: shiftFor(inScale, 12, 1024), Signed: true}
}

// fineLimit is the largest |x| for which the coarse window selects the fine
// table: with the coarse resolution 1/2 and a carry of one unit, the true
// input is then within 16 of the centre, inside the fine window.
const fineLimit = 15.0

// coarseTables returns the coarse-window tables: the selector
// [|x| <= fineLimit] (scale 0), the indicator [x > fineLimit] (scale 0) and,
// where the selector is 0, exp(min(x, 20)) (scale Frac).
func coarseTables(s lutSpec) (sel, pos, expOut []uint64) {
	n := 1 << uint(s.Bits)
	sel, pos, expOut = make([]uint64, n), make([]uint64, n), make([]uint64, n)
	for i := 0; i < n; i++ {
		x := s.point(i)
		switch {
		case math.Abs(x) <= fineLimit:
			sel[i] = 1
		case x > fineLimit:
			pos[i] = 1
			expOut[i] = fix(math.Exp(math.Min(x, 20)), Frac)
		}
	}
	return sel, pos, expOut
}

func (p Params) siluSpec() lutSpec {
	return lutSpec{Bits: p.SiLUBits, InScale: 3 * Frac, Shift: shiftFor(3*Frac, p.SiLUBits, siluRange), Signed: true}
}

// wideSpecs returns the levels of a wide-range lookup of a positive input at
// scale inScale whose finest resolution is 2^-fineBits.
func (p Params) wideSpecs(inScale uint, fineBits, levels int) []lutSpec {
	s := make([]lutSpec, levels)
	for k := range s {
		s[k] = lutSpec{Bits: p.WideBits, InScale: inScale, Shift: uint(int(inScale) - fineBits + k*wideStep)}
	}
	return s
}

// recipSpecs covers the softmax denominator S (at scale Frac) up to 2^36.
func (p Params) recipSpecs() []lutSpec { return p.wideSpecs(Frac, 10, 9) }

// rsqrtSpecs covers the sum of squares of the residual at scale 2*Frac.
func (p Params) rsqrtSpecs() []lutSpec { return p.wideSpecs(2*Frac, 12, 7) }

// levelSpec reads the count of failed level indicators of a wide lookup
// (wideFinish) exactly: no bits dropped, a 4-bit window, so every count up
// to 15 has its own entry. Wide lookups therefore have at most 16 levels.
var levelSpec = lutSpec{Bits: 4}

// levelTable is [n == 0] at scale 0 over levelSpec's window.
var levelTable = func() []uint64 {
	t := make([]uint64, 1<<uint(levelSpec.Bits))
	t[0] = 1
	return t
}()

// wideThreshold is the upper end of the band of level k: level k is used for
// inputs below it (and above the previous level's threshold).
func wideThreshold(s lutSpec) float64 {
	return math.Ldexp(1, int(s.Shift)+s.Bits-int(s.InScale)-2)
}

// wideTables returns, for level k, its value table of f (at outScale) and (for k >= 1) the
// indicator table [x < threshold(level k-1)] at scale 0.
func wideTables(specs []lutSpec, outScale uint, f func(float64) float64) [][][]uint64 {
	out := make([][][]uint64, len(specs))
	for k, s := range specs {
		val := make([]uint64, 1<<uint(s.Bits))
		for i := range val {
			x := math.Max(s.point(i), 0)
			val[i] = fix(f(x), outScale)
		}
		tabs := [][]uint64{val}
		if k > 0 {
			th := wideThreshold(specs[k-1])
			ind := make([]uint64, len(val))
			for i := range ind {
				if s.point(i) < th {
					ind[i] = 1
				}
			}
			tabs = append(tabs, ind)
		}
		out[k] = tabs
	}
	return out
}
