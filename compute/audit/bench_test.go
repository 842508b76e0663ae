package audit

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkInvert measures the attack per position on stories260K: on the
// rows a relay receives (the search ends at the exact match) and on random
// rows (every candidate is tried).
func BenchmarkInvert(b *testing.B) {
	m, tok, path := testModel(b)
	seq := promptIDs(tok, Prompts[:1])[0]
	for _, L := range []int{1, 2, 3} {
		real := engineRows(b, m, path, L, seq)
		random := uniformRows(rand.New(rand.NewPCG(1, 1)), len(seq), m.Config().Dim)
		for name, rows := range map[string][][]float32{"real": real, "random": random} {
			b.Run(fmt.Sprintf("L=%d/%s", L, name), func(b *testing.B) {
				for range b.N {
					if _, err := Invert(m, L, rows); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*len(rows)), "µs/position")
			})
		}
	}
}
