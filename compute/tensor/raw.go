package tensor

// Raw is a named tensor as a model file stores it: element type, shape with
// Dims[0] the fastest-varying (GGUF order) and the bytes (usually a view into
// a memory-mapped file).
type Raw struct {
	Name string
	Type DType
	Dims []uint64
	Data []byte
}
