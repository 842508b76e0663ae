package tokenizer

import (
	"fmt"
	"unicode"
	"unicode/utf8"
)

// Pre-tokenizers of byte-level BPE models (spec §3.4), hand-written
// equivalents of the regular expressions below (Go's regexp has no
// lookahead). Each splitter takes, at every position, the first alternative
// that matches, with the regex's greedy and backtracking semantics. \s is
// Unicode White_Space, \p{L} letters, \p{N} numbers; an invalid UTF-8 byte
// counts as a character that is none of these.
//
// gpt2:   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// qwen2:  (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
// llama3: as qwen2 with \p{N}{1,3} in place of \p{N}
type preTokenizer int

const (
	preGPT2 preTokenizer = iota
	preQwen2
	preLlama3
)

// preTokenizerByName maps tokenizer.ggml.pre to a splitter.
func preTokenizerByName(name string) (preTokenizer, error) {
	switch name {
	case "", "default", "gpt2", "gpt-2":
		return preGPT2, nil
	case "qwen2":
		return preQwen2, nil
	case "llama3", "llama-v3", "llama-bpe", "smaug-bpe":
		return preLlama3, nil
	}
	return 0, fmt.Errorf("tokenizer: unsupported pre-tokenizer %q", name)
}

func runeLen(s string, i int) int {
	if s[i] < utf8.RuneSelf {
		return 1
	}
	_, n := utf8.DecodeRuneInString(s[i:])
	return n
}

// at returns the character at byte offset i and its length; -1 at the end.
// An invalid byte is returned as utf8.RuneError with length 1.
func at(s string, i int) (rune, int) {
	if i >= len(s) {
		return -1, 0
	}
	if s[i] < utf8.RuneSelf {
		return rune(s[i]), 1
	}
	return utf8.DecodeRuneInString(s[i:])
}

func isL(r rune) bool { return r >= 0 && unicode.IsLetter(r) }
func isN(r rune) bool { return r >= 0 && unicode.IsNumber(r) }
func isS(r rune) bool { return r >= 0 && unicode.IsSpace(r) }
func isOther(r rune) bool {
	return r >= 0 && !unicode.IsSpace(r) && !unicode.IsLetter(r) && !unicode.IsNumber(r)
}
func isCRLF(r rune) bool { return r == '\r' || r == '\n' }

// span returns the end of the run of characters satisfying f from i.
func span(s string, i int, f func(rune) bool) int {
	for i < len(s) {
		r, n := at(s, i)
		if !f(r) {
			break
		}
		i += n
	}
	return i
}

// contraction returns the length of a contraction suffix ('s 't 're 've 'm
// 'll 'd) at the start of s, which follows an apostrophe.
func contraction(s string, fold bool) int {
	for _, c := range [...]string{"s", "t", "re", "ve", "m", "ll", "d"} {
		if len(s) < len(c) {
			continue
		}
		ok := true
		for k := 0; k < len(c); k++ {
			b := s[k]
			if fold && b >= 'A' && b <= 'Z' {
				b += 'a' - 'A'
			}
			if b != c[k] {
				ok = false
				break
			}
		}
		if ok {
			return len(c)
		}
	}
	return 0
}

// spaceEnd handles \s+(?!\S)|\s+ for the whitespace run starting at i.
func spaceEnd(s string, i int) int {
	end := span(s, i, isS)
	if end == len(s) {
		return end
	}
	last := end - 1
	for last > i && !utf8.RuneStart(s[last]) {
		last--
	}
	if last > i {
		return last // leave the last space to prefix the next word
	}
	return end
}

func (p preTokenizer) next(s string, i int) int {
	r, n := at(s, i)
	if p == preGPT2 {
		if r == '\'' {
			if m := contraction(s[i+1:], false); m > 0 {
				return i + 1 + m
			}
		}
		j := i
		if r == ' ' {
			j = i + 1
		}
		r2, _ := at(s, j)
		switch {
		case isL(r2):
			return span(s, j, isL)
		case isN(r2):
			return span(s, j, isN)
		case isOther(r2):
			return span(s, j, isOther)
		}
		return spaceEnd(s, i)
	}
	// qwen2 and llama3
	if r == '\'' {
		if m := contraction(s[i+1:], true); m > 0 {
			return i + 1 + m
		}
	}
	if !isCRLF(r) && !isL(r) && !isN(r) {
		if r2, _ := at(s, i+n); isL(r2) {
			return span(s, i+n, isL)
		}
	}
	if isL(r) {
		return span(s, i, isL)
	}
	if isN(r) {
		end := i + n
		if p == preLlama3 {
			for k := 1; k < 3; k++ {
				r2, n2 := at(s, end)
				if !isN(r2) {
					break
				}
				end += n2
			}
		}
		return end
	}
	j := i
	if r == ' ' {
		j = i + 1
	}
	if r2, _ := at(s, j); isOther(r2) {
		return span(s, span(s, j, isOther), isCRLF)
	}
	// \s*[\r\n]+ : up to the last newline of the whitespace run
	end := span(s, i, isS)
	for k := end - 1; k >= i; k-- {
		if isCRLF(rune(s[k])) {
			return k + 1
		}
	}
	return spaceEnd(s, i)
}

// split calls emit with each pre-token of s in order.
func (p preTokenizer) split(s string, emit func(string)) {
	for i := 0; i < len(s); {
		j := p.next(s, i)
		if j <= i { // cannot happen: every character matches some alternative
			j = i + runeLen(s, i)
		}
		emit(s[i:j])
		i = j
	}
}
