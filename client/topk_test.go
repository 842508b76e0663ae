package client

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/unfed/unfed/compute/sample"
	"github.com/unfed/unfed/relay/hop"
)

// TestGreedyTopOneIsArgmax checks the premise of greedy_top_k: the first
// entry of the last hop's top-k is the token the client's greedy sampler
// would pick from the dense logits, with ties and NaN.
func TestGreedyTopOneIsArgmax(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	nan := float32(math.NaN())
	cases := [][]float32{
		{nan, nan, nan},
		{nan, 1, 1},
		{2, 2, 2},
		{-1, float32(math.Inf(-1)), -1},
	}
	for i := 0; i < 300; i++ {
		l := make([]float32, 1+r.IntN(200))
		for j := range l {
			switch r.IntN(10) {
			case 0:
				l[j] = nan
			case 1, 2:
				l[j] = 3 // frequent ties at the top
			default:
				l[j] = float32(r.IntN(7)) - 3
			}
		}
		cases = append(cases, l)
	}
	for _, l := range cases {
		want := sample.Argmax(append([]float32(nil), l...))
		top := hop.TopK(l, 1)
		if len(top) != 1 || top[0].ID != want {
			t.Fatalf("logits %v: top-1 %v, argmax %d", l, top, want)
		}
	}
}
