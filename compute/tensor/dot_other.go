//go:build !amd64

package tensor

func dot16(a, b []float32, s *[16]float32) { dot16Generic(a, b, s) }

func dequantQ8Row(dst []float32, src []byte) { dequantQ8RowGeneric(dst, src) }
