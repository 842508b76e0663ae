package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// Byte-level BPE (spec §3.3), as GPT-2 and llama.cpp's BPE session: split the
// text with the pre-tokenizer, map each byte of a piece to its printable
// stand-in character, merge the adjacent pair with the lowest merge rank
// (ties: leftmost), then map pieces to ids, falling back to one token per
// byte for a piece the vocabulary lacks.

// byteToRune is GPT-2's bytes_to_unicode table: printable Latin-1 bytes stand
// for themselves, the other 68 bytes map to U+0100 upwards in byte order.
var byteToRune [256]rune

// runeToByte inverts byteToRune.
var runeToByte map[rune]byte

func init() {
	runeToByte = make(map[rune]byte, 256)
	n := rune(0)
	for b := 0; b < 256; b++ {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			byteToRune[b] = rune(b)
		} else {
			byteToRune[b] = 256 + n
			n++
		}
		runeToByte[byteToRune[b]] = byte(b)
	}
}

// byteEncode maps every byte of s to its stand-in character.
func byteEncode(s string) string {
	var b strings.Builder
	b.Grow(2 * len(s))
	for i := 0; i < len(s); i++ {
		b.WriteRune(byteToRune[s[i]])
	}
	return b.String()
}

// byteDecode maps stand-in characters back to bytes; other characters are
// kept as their UTF-8 encoding.
func byteDecode(s string) string {
	out := make([]byte, 0, len(s))
	for _, r := range s {
		if b, ok := runeToByte[r]; ok {
			out = append(out, b)
		} else {
			out = utf8.AppendRune(out, r)
		}
	}
	return string(out)
}

func (t *Tokenizer) encodeBPE(out []int, frag string) []int {
	var syms []symbol
	var h bigramHeap
	t.pre.split(frag, func(word string) {
		enc := byteEncode(word)
		if t.pre == preLlama3 { // llama.cpp's ignore_merges: a whole-word token wins
			if id, ok := t.ids[enc]; ok {
				out = append(out, id)
				return
			}
		}
		syms = runeSymbols(enc, syms)
		mergeSymbols(enc, syms, &h, t.bpePrio, func(piece string) {
			if id, ok := t.ids[piece]; ok {
				out = append(out, id)
				return
			}
			for _, r := range piece {
				if id := t.byteID[runeToByte[r]]; id >= 0 {
					out = append(out, id)
				} else if t.unk >= 0 {
					out = append(out, t.unk)
				}
			}
		})
	})
	return out
}

func (t *Tokenizer) bpePrio(a, b, _ string) (float32, bool) {
	r, ok := t.merges[[2]string{a, b}]
	return float32(r), ok
}
