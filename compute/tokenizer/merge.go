package tokenizer

// Pair merging shared by both BPE flavours. Symbols are contiguous byte
// ranges of one string, linked into a list; candidate pairs sit in a binary
// min-heap ordered by (priority, left position). A popped pair is stale when
// either side has been merged since it was pushed; this is detected by the
// recorded combined length (llama.cpp's trick), so no decrease-key is needed.
// Each merge pushes at most two pairs: O(n log n) for n symbols.

type symbol struct {
	start, end int32 // byte range; start == end once merged into its left neighbour
	prev, next int32 // neighbours, -1 at the ends
}

type bigram struct {
	prio        float32 // lower merges first; exact for scores and ranks below 2^24
	left, right int32
	size        int32 // combined byte length when pushed
}

type bigramHeap []bigram

func (h bigramHeap) less(i, j int) bool {
	return h[i].prio < h[j].prio || (h[i].prio == h[j].prio && h[i].left < h[j].left)
}

func (h *bigramHeap) push(b bigram) {
	*h = append(*h, b)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if !s.less(i, p) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *bigramHeap) pop() bigram {
	s := *h
	top := s[0]
	n := len(s) - 1
	s[0] = s[n]
	s = s[:n]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && s.less(l, m) {
			m = l
		}
		if r < n && s.less(r, m) {
			m = r
		}
		if m == i {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return top
}

// pairPrio returns the priority of merging a and b into ab, or false if the
// pair cannot merge.
type pairPrio func(a, b, ab string) (float32, bool)

// mergeSymbols applies merges to the symbols of s (adjacent, covering s, in
// order, linked by index) and calls emit for each final piece in order. h is
// scratch space, reused across calls.
func mergeSymbols(s string, syms []symbol, h *bigramHeap, prio pairPrio, emit func(piece string)) {
	if len(syms) == 0 {
		return
	}
	if cap(*h) < 2*len(syms) {
		*h = make(bigramHeap, 0, 2*len(syms))
	}
	*h = (*h)[:0]
	try := func(l, r int32) {
		if l < 0 || r < 0 {
			return
		}
		L, R := &syms[l], &syms[r]
		if p, ok := prio(s[L.start:L.end], s[R.start:R.end], s[L.start:R.end]); ok {
			h.push(bigram{prio: p, left: l, right: r, size: R.end - L.start})
		}
	}
	for i := int32(1); i < int32(len(syms)); i++ {
		try(i-1, i)
	}
	for len(*h) > 0 {
		b := h.pop()
		L, R := &syms[b.left], &syms[b.right]
		if L.start == L.end || R.start == R.end || L.next != b.right || R.end-L.start != b.size {
			continue // stale
		}
		L.end = R.end
		R.start = R.end
		L.next = R.next
		if R.next >= 0 {
			syms[R.next].prev = b.left
		}
		try(L.prev, b.left)
		try(b.left, L.next)
	}
	for i := int32(0); i >= 0; i = syms[i].next {
		emit(s[syms[i].start:syms[i].end])
	}
}

// runeSymbols splits s into one symbol per UTF-8 character (an invalid byte
// is a symbol of its own), reusing buf. len(s) must fit in int32 (inputs are
// bounded by MaxInputBytes).
func runeSymbols(s string, buf []symbol) []symbol {
	buf = buf[:0]
	if cap(buf) < len(s) {
		// (len(s) bytes, not its runes: a buffer reused for the next
		// text of the same length must pass this test, and SentencePiece
		// text has a three-byte "▁" per space)
		buf = make([]symbol, 0, len(s))
	}
	for i := 0; i < len(s); {
		n := runeLen(s, i)
		k := int32(len(buf))
		buf = append(buf, symbol{start: int32(i), end: int32(i + n), prev: k - 1, next: k + 1})
		i += n
	}
	if len(buf) > 0 {
		buf[len(buf)-1].next = -1
	}
	return buf
}
