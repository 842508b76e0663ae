package tokenizer

import (
	"sort"
	"strings"
)

// Special tokens in text (spec §3.5): before encoding, the text is cut at
// occurrences of user-defined tokens (always) and of control and unknown
// tokens (only for EncodeSpecial). Leftmost match wins; at the same position
// the longest token wins.

type special struct {
	text    string
	id      int
	control bool // control or unknown: matched only when parsing control tokens
}

// collectSpecials lists the tokens matched in text, longest first.
func collectSpecials(tokens []string, types []TokenType) []special {
	var sp []special
	for id, ty := range types {
		if tokens[id] == "" {
			continue
		}
		switch ty {
		case TypeUserDefined:
			sp = append(sp, special{text: tokens[id], id: id})
		case TypeControl, TypeUnknown:
			sp = append(sp, special{text: tokens[id], id: id, control: true})
		}
	}
	sort.SliceStable(sp, func(i, j int) bool { return len(sp[i].text) > len(sp[j].text) })
	return sp
}

// partition calls emit for each fragment of text in order: a special token
// (id >= 0) or a run of plain text (id == -1).
func (t *Tokenizer) partition(text string, parseControl bool, emit func(frag string, id int)) {
	var cand []special
	for _, s := range t.specials {
		if !s.control || parseControl {
			cand = append(cand, s)
		}
	}
	if len(cand) == 0 {
		if text != "" {
			emit(text, -1)
		}
		return
	}
	// next[k] caches the next occurrence of cand[k] at or after pos
	// (-1: none left), so the text is scanned once per candidate.
	next := make([]int, len(cand))
	for k := range cand {
		next[k] = -2 // unknown
	}
	pos := 0
	for pos < len(text) {
		best := -1
		for k := range cand {
			if next[k] == -2 || (next[k] >= 0 && next[k] < pos) {
				if i := strings.Index(text[pos:], cand[k].text); i >= 0 {
					next[k] = pos + i
				} else {
					next[k] = -1
				}
			}
			if next[k] >= 0 && (best < 0 || next[k] < next[best]) {
				best = k // candidates are longest first, so ties keep the longest
			}
		}
		if best < 0 {
			break
		}
		if next[best] > pos {
			emit(text[pos:next[best]], -1)
		}
		emit(cand[best].text, cand[best].id)
		pos = next[best] + len(cand[best].text)
	}
	if pos < len(text) {
		emit(text[pos:], -1)
	}
}
