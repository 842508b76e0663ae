package gguf

import "fmt"

// Type is a ggml tensor element type as stored in a GGUF tensor descriptor.
type Type uint32

// Tensor types (ggml numbering; gaps are types removed from ggml).
const (
	TypeF32     Type = 0
	TypeF16     Type = 1
	TypeQ4_0    Type = 2
	TypeQ4_1    Type = 3
	TypeQ5_0    Type = 6
	TypeQ5_1    Type = 7
	TypeQ8_0    Type = 8
	TypeQ8_1    Type = 9
	TypeQ2_K    Type = 10
	TypeQ3_K    Type = 11
	TypeQ4_K    Type = 12
	TypeQ5_K    Type = 13
	TypeQ6_K    Type = 14
	TypeQ8_K    Type = 15
	TypeIQ2_XXS Type = 16
	TypeIQ2_XS  Type = 17
	TypeIQ3_XXS Type = 18
	TypeIQ1_S   Type = 19
	TypeIQ4_NL  Type = 20
	TypeIQ3_S   Type = 21
	TypeIQ2_S   Type = 22
	TypeIQ4_XS  Type = 23
	TypeI8      Type = 24
	TypeI16     Type = 25
	TypeI32     Type = 26
	TypeI64     Type = 27
	TypeF64     Type = 28
	TypeIQ1_M   Type = 29
	TypeBF16    Type = 30
)

type typeTraits struct {
	name      string
	blockSize uint64 // elements per block
	typeSize  uint64 // bytes per block
}

// traits lists the types whose block layout we know. IQ* types are named but
// not sized here, so files using them are rejected (spec §2.5).
var traits = map[Type]typeTraits{
	TypeF32:     {"F32", 1, 4},
	TypeF16:     {"F16", 1, 2},
	TypeQ4_0:    {"Q4_0", 32, 18},
	TypeQ4_1:    {"Q4_1", 32, 20},
	TypeQ5_0:    {"Q5_0", 32, 22},
	TypeQ5_1:    {"Q5_1", 32, 24},
	TypeQ8_0:    {"Q8_0", 32, 34},
	TypeQ8_1:    {"Q8_1", 32, 36},
	TypeQ2_K:    {"Q2_K", 256, 84},
	TypeQ3_K:    {"Q3_K", 256, 110},
	TypeQ4_K:    {"Q4_K", 256, 144},
	TypeQ5_K:    {"Q5_K", 256, 176},
	TypeQ6_K:    {"Q6_K", 256, 210},
	TypeQ8_K:    {"Q8_K", 256, 292},
	TypeIQ2_XXS: {"IQ2_XXS", 0, 0},
	TypeIQ2_XS:  {"IQ2_XS", 0, 0},
	TypeIQ3_XXS: {"IQ3_XXS", 0, 0},
	TypeIQ1_S:   {"IQ1_S", 0, 0},
	TypeIQ4_NL:  {"IQ4_NL", 32, 18},
	TypeIQ3_S:   {"IQ3_S", 0, 0},
	TypeIQ2_S:   {"IQ2_S", 0, 0},
	TypeIQ4_XS:  {"IQ4_XS", 0, 0},
	TypeI8:      {"I8", 1, 1},
	TypeI16:     {"I16", 1, 2},
	TypeI32:     {"I32", 1, 4},
	TypeI64:     {"I64", 1, 8},
	TypeF64:     {"F64", 1, 8},
	TypeIQ1_M:   {"IQ1_M", 0, 0},
	TypeBF16:    {"BF16", 1, 2},
}

// String returns the ggml name of the type, or "type(N)" for unknown types.
func (t Type) String() string {
	if tr, ok := traits[t]; ok {
		return tr.name
	}
	return fmt.Sprintf("type(%d)", uint32(t))
}

// BlockSize returns the number of elements in one block of the type, or 0 if
// the type's layout is unknown to this package.
func (t Type) BlockSize() uint64 { return traits[t].blockSize }

// TypeSize returns the number of bytes in one block of the type, or 0 if the
// type's layout is unknown to this package.
func (t Type) TypeSize() uint64 { return traits[t].typeSize }

// Sizable reports whether BlockSize and TypeSize are known for t.
func (t Type) Sizable() bool { return traits[t].blockSize != 0 }

// RowSize returns the byte size of n elements of type t. It fails if the type
// cannot be sized, n is not a multiple of the block size, or the size overflows.
func (t Type) RowSize(n uint64) (uint64, error) {
	tr := traits[t]
	if tr.blockSize == 0 {
		return 0, fmt.Errorf("gguf: unsupported tensor type %v", t)
	}
	if n%tr.blockSize != 0 {
		return 0, fmt.Errorf("gguf: %d elements is not a multiple of the %v block size %d", n, t, tr.blockSize)
	}
	blocks := n / tr.blockSize
	if blocks != 0 && tr.typeSize > ^uint64(0)/blocks {
		return 0, fmt.Errorf("gguf: size of %d %v elements overflows", n, t)
	}
	return blocks * tr.typeSize, nil
}

// ValueType is the type tag of a GGUF metadata value.
type ValueType uint32

// Metadata value types.
const (
	ValueUint8   ValueType = 0
	ValueInt8    ValueType = 1
	ValueUint16  ValueType = 2
	ValueInt16   ValueType = 3
	ValueUint32  ValueType = 4
	ValueInt32   ValueType = 5
	ValueFloat32 ValueType = 6
	ValueBool    ValueType = 7
	ValueString  ValueType = 8
	ValueArray   ValueType = 9
	ValueUint64  ValueType = 10
	ValueInt64   ValueType = 11
	ValueFloat64 ValueType = 12
)

var valueTypeNames = [...]string{"UINT8", "INT8", "UINT16", "INT16", "UINT32", "INT32",
	"FLOAT32", "BOOL", "STRING", "ARRAY", "UINT64", "INT64", "FLOAT64"}

// String returns the GGUF name of the value type.
func (v ValueType) String() string {
	if int(v) < len(valueTypeNames) {
		return valueTypeNames[v]
	}
	return fmt.Sprintf("valuetype(%d)", uint32(v))
}

// scalarSize returns the encoded size of a fixed-size scalar, or 0 for
// STRING, ARRAY and unknown types.
func (v ValueType) scalarSize() int {
	switch v {
	case ValueUint8, ValueInt8, ValueBool:
		return 1
	case ValueUint16, ValueInt16:
		return 2
	case ValueUint32, ValueInt32, ValueFloat32:
		return 4
	case ValueUint64, ValueInt64, ValueFloat64:
		return 8
	}
	return 0
}
