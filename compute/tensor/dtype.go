package tensor

import (
	"errors"
	"fmt"
	"strings"
)

// DType is a tensor element type, numbered as GGML numbers them.
type DType uint32

// Supported element types.
const (
	F32  DType = 0
	F16  DType = 1
	Q8_0 DType = 8
	BF16 DType = 30
)

// Q8Block is the number of elements in one Q8_0 block.
const Q8Block = 32

// q8BlockBytes is the size in bytes of one Q8_0 block.
const q8BlockBytes = 2 + Q8Block

// ErrUnsupportedType reports an element type the engine cannot compute with.
var ErrUnsupportedType = errors.New("tensor: unsupported element type")

func (t DType) String() string {
	switch t {
	case F32:
		return "f32"
	case F16:
		return "f16"
	case Q8_0:
		return "q8_0"
	case BF16:
		return "bf16"
	}
	return fmt.Sprintf("type%d", uint32(t))
}

// ParseDType parses the names printed by String (case-insensitive).
func ParseDType(s string) (DType, error) {
	switch strings.ToLower(s) {
	case "f32":
		return F32, nil
	case "f16":
		return F16, nil
	case "q8_0":
		return Q8_0, nil
	case "bf16":
		return BF16, nil
	}
	return 0, fmt.Errorf("%w: %q", ErrUnsupportedType, s)
}

// Supported reports whether the kernels handle t.
func (t DType) Supported() bool {
	switch t {
	case F32, F16, Q8_0, BF16:
		return true
	}
	return false
}

// RowBytes returns the size in bytes of a row of n elements of type t. It
// fails for unsupported types, for n < 0 and for Q8_0 rows whose length is not
// a multiple of the block size.
func (t DType) RowBytes(n int) (int, error) {
	if n < 0 {
		return 0, fmt.Errorf("tensor: negative row length %d", n)
	}
	switch t {
	case F32:
		return 4 * n, nil
	case F16, BF16:
		return 2 * n, nil
	case Q8_0:
		if n%Q8Block != 0 {
			return 0, fmt.Errorf("tensor: q8_0 row length %d is not a multiple of %d", n, Q8Block)
		}
		return n / Q8Block * q8BlockBytes, nil
	}
	return 0, fmt.Errorf("%w: %v", ErrUnsupportedType, t)
}
