package gguf

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Value is one metadata value: a scalar, a string, or an array of scalars or
// strings (arrays of arrays are rejected, spec §2.3). The zero Value is an
// invalid value whose accessors all report false. Values are immutable and
// do not refer to the file's mapping, so they stay valid after Close.
type Value struct {
	typ  ValueType
	elem ValueType // element type when typ == ValueArray
	n    int       // element count when typ == ValueArray
	num  uint64    // scalar bits: unsigned as is, signed sign-extended, floats as IEEE bits
	str  string
	raw  []byte   // numeric array: n little-endian elements of elem
	strs []string // string array
	ok   bool
}

// Type returns the value's type tag.
func (v Value) Type() ValueType { return v.typ }

// ElemType returns the element type of an array value.
func (v Value) ElemType() ValueType { return v.elem }

// Len returns the number of elements of an array value, 0 otherwise.
func (v Value) Len() int { return v.n }

func isSigned(t ValueType) bool {
	return t == ValueInt8 || t == ValueInt16 || t == ValueInt32 || t == ValueInt64
}

func isUnsigned(t ValueType) bool {
	return t == ValueUint8 || t == ValueUint16 || t == ValueUint32 || t == ValueUint64
}

// AsString returns a STRING value.
func (v Value) AsString() (string, bool) {
	return v.str, v.ok && v.typ == ValueString
}

// AsUint returns an integer value that is not negative.
func (v Value) AsUint() (uint64, bool) {
	switch {
	case !v.ok:
		return 0, false
	case isUnsigned(v.typ):
		return v.num, true
	case isSigned(v.typ) && int64(v.num) >= 0:
		return v.num, true
	}
	return 0, false
}

// AsInt returns an integer value that fits in int64.
func (v Value) AsInt() (int64, bool) {
	switch {
	case !v.ok:
		return 0, false
	case isSigned(v.typ):
		return int64(v.num), true
	case isUnsigned(v.typ) && v.num <= math.MaxInt64:
		return int64(v.num), true
	}
	return 0, false
}

// AsFloat returns a FLOAT32, FLOAT64 or integer value as float64.
func (v Value) AsFloat() (float64, bool) {
	switch {
	case !v.ok:
		return 0, false
	case v.typ == ValueFloat32:
		return float64(math.Float32frombits(uint32(v.num))), true
	case v.typ == ValueFloat64:
		return math.Float64frombits(v.num), true
	case isSigned(v.typ):
		return float64(int64(v.num)), true
	case isUnsigned(v.typ):
		return float64(v.num), true
	}
	return 0, false
}

// AsBool returns a BOOL value.
func (v Value) AsBool() (bool, bool) {
	return v.num != 0, v.ok && v.typ == ValueBool
}

// Strings returns a copy of an array of STRING.
func (v Value) Strings() ([]string, bool) {
	if !v.ok || v.typ != ValueArray || v.elem != ValueString {
		return nil, false
	}
	return append([]string(nil), v.strs...), true
}

// Float32s returns an array of FLOAT32 (or FLOAT64, narrowed).
func (v Value) Float32s() ([]float32, bool) {
	if !v.ok || v.typ != ValueArray {
		return nil, false
	}
	out := make([]float32, v.n)
	switch v.elem {
	case ValueFloat32:
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(v.raw[4*i:]))
		}
	case ValueFloat64:
		for i := range out {
			out[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(v.raw[8*i:])))
		}
	default:
		return nil, false
	}
	return out, true
}

// Ints returns an array of any integer type whose elements all fit in int64.
func (v Value) Ints() ([]int64, bool) {
	if !v.ok || v.typ != ValueArray || !(isSigned(v.elem) || isUnsigned(v.elem)) {
		return nil, false
	}
	out := make([]int64, v.n)
	for i := range out {
		x, ok := v.elemValue(i).AsInt()
		if !ok {
			return nil, false
		}
		out[i] = x
	}
	return out, true
}

// Int32s returns an array of any integer type whose elements all fit in int32.
func (v Value) Int32s() ([]int32, bool) {
	all, ok := v.Ints()
	if !ok {
		return nil, false
	}
	out := make([]int32, len(all))
	for i, x := range all {
		if x < math.MinInt32 || x > math.MaxInt32 {
			return nil, false
		}
		out[i] = int32(x)
	}
	return out, true
}

// elemValue returns element i of a numeric array as a scalar Value.
func (v Value) elemValue(i int) Value {
	sz := v.elem.scalarSize()
	return Value{typ: v.elem, num: decodeScalar(v.elem, v.raw[i*sz:]), ok: true}
}

// decodeScalar reads a fixed-size scalar of type t from the front of b, which
// the caller guarantees is long enough.
func decodeScalar(t ValueType, b []byte) uint64 {
	switch t {
	case ValueUint8, ValueBool:
		return uint64(b[0])
	case ValueInt8:
		return uint64(int64(int8(b[0])))
	case ValueUint16:
		return uint64(binary.LittleEndian.Uint16(b))
	case ValueInt16:
		return uint64(int64(int16(binary.LittleEndian.Uint16(b))))
	case ValueUint32, ValueFloat32:
		return uint64(binary.LittleEndian.Uint32(b))
	case ValueInt32:
		return uint64(int64(int32(binary.LittleEndian.Uint32(b))))
	default: // 64-bit types
		return binary.LittleEndian.Uint64(b)
	}
}

// String formats the value for people (unfed model info); long arrays are
// abbreviated.
func (v Value) String() string {
	if !v.ok {
		return "<invalid>"
	}
	switch v.typ {
	case ValueString:
		return strconv.Quote(v.str)
	case ValueBool:
		return strconv.FormatBool(v.num != 0)
	case ValueFloat32, ValueFloat64:
		f, _ := v.AsFloat()
		return strconv.FormatFloat(f, 'g', -1, 64)
	case ValueArray:
		const show = 4
		var b strings.Builder
		fmt.Fprintf(&b, "[%v × %d:", v.elem, v.n)
		for i := 0; i < v.n && i < show; i++ {
			b.WriteByte(' ')
			if v.elem == ValueString {
				b.WriteString(strconv.Quote(v.strs[i]))
			} else {
				b.WriteString(v.elemValue(i).String())
			}
		}
		if v.n > show {
			b.WriteString(" …")
		}
		b.WriteByte(']')
		return b.String()
	}
	if isSigned(v.typ) {
		return strconv.FormatInt(int64(v.num), 10)
	}
	return strconv.FormatUint(v.num, 10)
}

// Constructors, for the Writer and for callers copying metadata.

// StringValue returns a STRING value.
func StringValue(s string) Value { return Value{typ: ValueString, str: s, ok: true} }

// Uint32Value returns a UINT32 value.
func Uint32Value(x uint32) Value { return Value{typ: ValueUint32, num: uint64(x), ok: true} }

// Uint64Value returns a UINT64 value.
func Uint64Value(x uint64) Value { return Value{typ: ValueUint64, num: x, ok: true} }

// Int32Value returns an INT32 value.
func Int32Value(x int32) Value { return Value{typ: ValueInt32, num: uint64(int64(x)), ok: true} }

// Float32Value returns a FLOAT32 value.
func Float32Value(x float32) Value {
	return Value{typ: ValueFloat32, num: uint64(math.Float32bits(x)), ok: true}
}

// BoolValue returns a BOOL value.
func BoolValue(x bool) Value {
	v := Value{typ: ValueBool, ok: true}
	if x {
		v.num = 1
	}
	return v
}

// StringArrayValue returns an ARRAY of STRING (the slice is copied).
func StringArrayValue(s []string) Value {
	return Value{typ: ValueArray, elem: ValueString, n: len(s), strs: append([]string(nil), s...), ok: true}
}

// Float32ArrayValue returns an ARRAY of FLOAT32.
func Float32ArrayValue(x []float32) Value {
	raw := make([]byte, 4*len(x))
	for i, f := range x {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(f))
	}
	return Value{typ: ValueArray, elem: ValueFloat32, n: len(x), raw: raw, ok: true}
}

// Int32ArrayValue returns an ARRAY of INT32.
func Int32ArrayValue(x []int32) Value {
	raw := make([]byte, 4*len(x))
	for i, d := range x {
		binary.LittleEndian.PutUint32(raw[4*i:], uint32(d))
	}
	return Value{typ: ValueArray, elem: ValueInt32, n: len(x), raw: raw, ok: true}
}
