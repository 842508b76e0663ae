package hop

import (
	"container/heap"
	"math"
	"slices"
)

// TopK returns the k largest logits, largest first; equal values are ordered
// by lower id first, and NaN ranks below every number (spec §3.8). The result
// is deterministic for a given input. k is clamped to len(logits).
func TopK(logits []float32, k int) []Entry {
	k = min(k, len(logits))
	if k <= 0 {
		return nil
	}
	h := make(entryHeap, 0, k)
	for i, v := range logits {
		e := Entry{ID: i, Value: v}
		if len(h) < k {
			heap.Push(&h, e)
			continue
		}
		// Most values lose to the worst kept one on a plain comparison; the
		// full order (ties, NaN) is needed only for the rest.
		if v < h[0].Value {
			continue
		}
		if better(e, h[0]) {
			h[0] = e
			heap.Fix(&h, 0)
		}
	}
	out := []Entry(h)
	slices.SortFunc(out, func(a, b Entry) int {
		if better(a, b) {
			return -1
		}
		return 1
	})
	return out
}

// better is the strict total order of spec §3.8: by value (NaN lowest), then
// by lower id.
func better(a, b Entry) bool {
	an, bn := math.IsNaN(float64(a.Value)), math.IsNaN(float64(b.Value))
	switch {
	case an != bn:
		return bn
	case !an && a.Value != b.Value:
		return a.Value > b.Value
	}
	return a.ID < b.ID
}

// entryHeap is a min-heap by better: the root is the worst kept entry.
type entryHeap []Entry

func (h entryHeap) Len() int           { return len(h) }
func (h entryHeap) Less(i, j int) bool { return better(h[j], h[i]) }
func (h entryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *entryHeap) Push(x any)        { *h = append(*h, x.(Entry)) }
func (h *entryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
