package tokenizer

import "strings"

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
	syms := runeSymbols(text, nil)
	var h bigramHeap
	mergeSymbols(text, syms, &h, t.spmPrio, func(piece string) {
		if id, ok := t.ids[piece]; ok {
			out = append(out, id)
		} else {
			out = t.appendBytes(out, piece)
		}
	})
	return out
}

func (t *Tokenizer) spmPrio(_, _, ab string) (float32, bool) {
	id, ok := t.ids[ab]
	if !ok {
		return 0, false
	}
	return -t.scores[id], true
}
