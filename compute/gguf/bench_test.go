package gguf

import (
	"testing"

	"github.com/unfed/unfed/compute/modeltest"
)

func BenchmarkOpen(b *testing.B) {
	for _, name := range []string{"stories260K.gguf", "llama-2-tiny-random.gguf"} {
		path := modeltest.Path(b, name)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				f, err := Open(path)
				if err != nil {
					b.Fatal(err)
				}
				f.Close()
			}
		})
	}
}
