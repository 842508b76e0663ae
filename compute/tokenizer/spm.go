package tokenizer

import (
	"strings"
	"sync"
)

// SentencePiece-style BPE (spec §3.2), as llama.cpp's SPM session and
// llama2.c's encode: escape spaces, add the dummy prefix, split into
// characters, merge the adjacent pair whose concatenation is the
// best-scoring token (ties: leftmost), then map pieces to ids with byte
// fallback for characters the vocabulary lacks.

func (t *Tokenizer) encodeSPM(out []int, frag string, prefix bool) []int {
	if frag == "" {
		return out
	}
	text := frag
	if t.space != " " {
		text = strings.ReplaceAll(text, " ", t.space)
	}
	if prefix {
		text = t.space + text
	}
	sc := spmPool.Get().(*spmScratch)
	sc.syms = runeSymbols(text, sc.syms)
	mergeSymbols(text, sc.syms, &sc.h, t.spmPrio, func(piece string) {
		if id, ok := t.ids[piece]; ok {
			out = append(out, id)
		} else {
			out = t.appendBytes(out, piece)
		}
	})
	if cap(sc.syms) <= maxPooledSymbols {
		spmPool.Put(sc)
	}
	return out
}

// spmScratch is encodeSPM's working memory, reused between prompts (a
// client tokenizes every request: new memory each time is new pages, each a
// page fault, before the prompt can leave; docs/PERFORMANCE.md, seventh
// look). Nothing of a prompt outlives its encode in it: runeSymbols and
// mergeSymbols overwrite what they read.
type spmScratch struct {
	syms []symbol
	h    bigramHeap
}

var spmPool = sync.Pool{New: func() any { return new(spmScratch) }}

// maxPooledSymbols bounds the scratch kept: a longer text's is left to the
// collector.
const maxPooledSymbols = 1 << 16

func (t *Tokenizer) spmPrio(_, _, ab string) (float32, bool) {
	id, ok := t.ids[ab]
	if !ok {
		return 0, false
	}
	return -t.scores[id], true
}
