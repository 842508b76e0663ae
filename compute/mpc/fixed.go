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
	// Interp is the number of the dropped bits, counted from the top, that
	// an interpolated lookup (spec §6.8) uses for its linear term; 0 reads
	// the entry alone (spec §6.4).
	Interp uint
}

// interpBits is the Interp of every interpolated lookup: the part of the
// input below the window enters the linear term with 6 bits.
const interpBits = 6

// step returns the input distance between consecutive entries.
func (s lutSpec) step() float64 { return math.Ldexp(1, int(s.Shift)-int(s.InScale)) }

// point returns the input value that index i stands for.
func (s lutSpec) point(i int) float64 {
	if s.Signed && i >= 1<<uint(s.Bits-1) {
		i -= 1 << uint(s.Bits)
	}
	return math.Ldexp(float64(i), int(s.Shift)-int(s.InScale)) - s.Offset
}

// table builds a table of f at scale outScale.
func (s lutSpec) table(f func(float64) float64, outScale uint) []uint64 {
	t := make([]uint64, 1<<uint(s.Bits))
	for i := range t {
		t[i] = fix(f(s.point(i)), outScale)
	}
	return t
}

// slope builds the slope table of an interpolated lookup (spec §6.8): the
// derivative df at each entry, times the input value of one unit of the
// interpolation fraction, at scale outScale.
func (s lutSpec) slope(df func(float64) float64, outScale uint) []uint64 {
	unit := math.Ldexp(1, int(s.Shift)-int(s.Interp)-int(s.InScale))
	t := make([]uint64, 1<<uint(s.Bits))
	for i := range t {
		t[i] = fix(df(s.point(i))*unit, outScale)
	}
	return t
}

// Params fixes the approximations; the dealer and both parties must use the
// same values (they enter the configuration hash). The zero value means the
// defaults below.
type Params struct {
	// ExpBits is the width of the interpolated exp LUT in softmax (default
	// 10): the window [-ExpRange+ExpMax, ExpMax) is covered at resolution
	// 2*ExpRange/2^ExpBits.
	ExpBits int
	// SiLUBits is the width of the interpolated SiLU LUT (default 9) over
	// [-SiLURange, SiLURange).
	SiLUBits int
	// WideBits is the width of each interpolated level of the reciprocal and
	// rsqrt lookups (default 10).
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
		p.ExpBits = 10
	}
	if p.SiLUBits == 0 {
		p.SiLUBits = 9
	}
	if p.WideBits == 0 {
		p.WideBits = 10
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
	return lutSpec{Bits: p.ExpBits, InScale: 3 * Frac, Shift: shiftFor(3*Frac, p.ExpBits, expRange), Offset: expRange - expMax, Signed: true, Interp: interpBits}
}

func (p Params) siluSpec() lutSpec {
	return lutSpec{Bits: p.SiLUBits, InScale: 3 * Frac, Shift: shiftFor(3*Frac, p.SiLUBits, siluRange), Signed: true, Interp: interpBits}
}

// coarseSpec is the wide, coarse window over [-1024, 1024) in which the
// window comparison (cmp.go) tells inputs inside the fine window of exp and
// SiLU from those outside (spec §6.9): 14 bits (resolution 2^-3) for exp, 10
// bits (resolution 2) for SiLU.
func coarseSpec(inScale uint, bits int) lutSpec {
	return lutSpec{Bits: bits, InScale: inScale, Shift: shiftFor(inScale, bits, 1024), Signed: true}
}

const (
	expCoarseBits  = 14
	siluCoarseBits = 10
)

// wideSpecs returns the levels of a wide-range lookup of a positive input at
// scale inScale whose level 0 covers [0, 2^win0); level k covers
// [0, 2^(win0 + wideStep*k)) with WideBits entries.
func (p Params) wideSpecs(inScale uint, win0, levels int) []lutSpec {
	s := make([]lutSpec, levels)
	for k := range s {
		s[k] = lutSpec{Bits: p.WideBits, InScale: inScale, Shift: uint(int(inScale) + win0 - p.WideBits + k*wideStep), Interp: interpBits}
	}
	return s
}

// recipSpecs covers the softmax denominator S (at scale Frac) up to 2^36.
func (p Params) recipSpecs() []lutSpec { return p.wideSpecs(Frac, 4, 9) }

// rsqrtSpecs covers the sum of squares of the residual at scale 2*Frac up to 2^26.
func (p Params) rsqrtSpecs() []lutSpec { return p.wideSpecs(2*Frac, 2, 7) }

// wideThreshold is the upper end of the band of level k: level k is used for
// inputs below it (and above the previous level's threshold).
func wideThreshold(s lutSpec) float64 {
	return math.Ldexp(1, int(s.Shift)+s.Bits-int(s.InScale)-2)
}

// wideLevel holds the public tables of one level of a wide lookup, rotated
// (rotTable).
type wideLevel struct {
	val, slope []uint64 // f and its slope (spec §6.8), at the lookup's output scale
}

// wideTables returns the tables of each level for f (derivative df) at
// outScale. Below 0 (outside every level's window) f is taken at 0.
func wideTables(specs []lutSpec, outScale uint, f, df func(float64) float64) []wideLevel {
	out := make([]wideLevel, len(specs))
	for k, s := range specs {
		pos := func(g func(float64) float64) func(float64) float64 {
			return func(x float64) float64 { return g(math.Max(x, 0)) }
		}
		lv := wideLevel{val: rotTable(s.table(pos(f), outScale)), slope: rotTable(s.slope(pos(df), outScale))}
		out[k] = lv
	}
	return out
}
