package tokenizer

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// Limits (spec §3.6).
const (
	MaxVocab      = 1 << 20 // tokens in a vocabulary
	MaxTokenBytes = 1024    // bytes in one token's text
	MaxMerges     = 1 << 21 // merge rules of a byte-level BPE vocabulary
	MaxSpecials   = 1 << 14 // control and user-defined tokens matched in text
	MaxInputBytes = 1 << 20 // bytes of text Encode accepts (see Encode)
)

// ErrInputTooLarge is returned by EncodeChecked for text over MaxInputBytes.
var ErrInputTooLarge = errors.New("tokenizer: input larger than MaxInputBytes")

// TokenType is the GGUF token type (tokenizer.ggml.token_type).
type TokenType int32

// Token types, numbered as in GGUF / llama.cpp.
const (
	TypeUndefined   TokenType = 0 // treated as normal
	TypeNormal      TokenType = 1
	TypeUnknown     TokenType = 2
	TypeControl     TokenType = 3
	TypeUserDefined TokenType = 4
	TypeUnused      TokenType = 5
	TypeByte        TokenType = 6
)

type kind int

const (
	kindSPM kind = iota
	kindGPT2
)

// unknownPiece is what Decode emits for the unknown token (as llama.cpp).
const unknownPiece = "\u2585"

// Tokenizer encodes and decodes text for one vocabulary. It is immutable
// after construction and safe for concurrent use.
type Tokenizer struct {
	kind   kind
	tokens []string
	scores []float32
	types  []TokenType
	pieces []string // decoded bytes of each token

	ids    map[string]int // text → id of tokens that text may produce
	byteID [256]int       // token of each raw byte, -1 if none

	bos, eos, unk, eot, eom int // -1 when absent
	eog                     map[int]bool
	addBOS                  bool
	addSpacePrefix          bool   // SPM: dummy prefix, and strip it when decoding
	space                   string // SPM: what a space is in the vocabulary, "▁" or " " (llama2.c)

	merges map[[2]string]int // gpt2: merge rank
	pre    preTokenizer

	specials     []special // matched in text before encoding (special.go)
	chatTemplate string
}

// Kind returns "llama" (SentencePiece BPE) or "gpt2" (byte-level BPE).
func (t *Tokenizer) Kind() string {
	if t.kind == kindGPT2 {
		return "gpt2"
	}
	return "llama"
}

// VocabSize returns the number of tokens.
func (t *Tokenizer) VocabSize() int { return len(t.tokens) }

// BOS returns the beginning-of-sequence id, or -1 if the vocabulary has none.
func (t *Tokenizer) BOS() int { return t.bos }

// EOS returns the end-of-sequence id, or -1 if the vocabulary has none.
func (t *Tokenizer) EOS() int { return t.eos }

// AddBOS reports whether the model expects BOS before a prompt
// (tokenizer.ggml.add_bos_token; default true for llama, false for gpt2).
func (t *Tokenizer) AddBOS() bool { return t.addBOS }

// Token returns the vocabulary text of id, or "" if id is out of range.
func (t *Tokenizer) Token(id int) string {
	if id < 0 || id >= len(t.tokens) {
		return ""
	}
	return t.tokens[id]
}

// TokenType returns the type of id, or TypeUndefined if id is out of range.
func (t *Tokenizer) TokenType(id int) TokenType {
	if id < 0 || id >= len(t.types) {
		return TypeUndefined
	}
	return t.types[id]
}

// IsEOG reports whether id ends generation: EOS, EOT or EOM when the
// metadata names them, and control tokens whose text is a well-known end
// marker (<|im_end|>, <|endoftext|>, <|eot_id|>, <|end|>, <end_of_turn>).
func (t *Tokenizer) IsEOG(id int) bool { return t.eog[id] }

// ChatTemplate returns tokenizer.chat_template, or "" if the file has none.
func (t *Tokenizer) ChatTemplate() string { return t.chatTemplate }

// Encode returns the token ids of text, with BOS first if addBOS is set and
// the vocabulary has one. Control tokens written in text are encoded as
// plain text; user-defined tokens are matched. Text over MaxInputBytes is
// truncated to MaxInputBytes (at a UTF-8 boundary); use EncodeChecked to get
// an error instead.
func (t *Tokenizer) Encode(text string, addBOS bool) []int {
	if len(text) > MaxInputBytes {
		cut := MaxInputBytes
		for cut > MaxInputBytes-utf8.UTFMax && !utf8.RuneStart(text[cut]) {
			cut--
		}
		text = text[:cut]
	}
	return t.encode(text, addBOS, false)
}

// EncodeChecked is Encode, but fails with ErrInputTooLarge instead of
// truncating.
func (t *Tokenizer) EncodeChecked(text string, addBOS bool) ([]int, error) {
	if len(text) > MaxInputBytes {
		return nil, fmt.Errorf("%w (%d bytes)", ErrInputTooLarge, len(text))
	}
	return t.encode(text, addBOS, false), nil
}

// EncodeSpecial is EncodeChecked that also turns the text of control tokens
// (e.g. "<|im_start|>") into those tokens. Use it only for text built from a
// chat template, never for raw user input.
func (t *Tokenizer) EncodeSpecial(text string, addBOS bool) ([]int, error) {
	if len(text) > MaxInputBytes {
		return nil, fmt.Errorf("%w (%d bytes)", ErrInputTooLarge, len(text))
	}
	return t.encode(text, addBOS, true), nil
}

func (t *Tokenizer) encode(text string, addBOS, parseControl bool) []int {
	out := make([]int, 0, len(text)/3+2)
	if addBOS && t.bos >= 0 {
		out = append(out, t.bos)
	}
	prevSpecial := true // SPM: a text fragment at the start or after a special token gets the dummy prefix
	t.partition(text, parseControl, func(frag string, id int) {
		if id >= 0 {
			out = append(out, id)
			prevSpecial = true
			return
		}
		if t.kind == kindGPT2 {
			out = t.encodeBPE(out, frag)
		} else {
			out = t.encodeSPM(out, frag, prevSpecial && t.addSpacePrefix)
		}
		prevSpecial = false
	})
	return out
}

// appendBytes appends the byte tokens of s (unknown for bytes without one).
func (t *Tokenizer) appendBytes(out []int, s string) []int {
	for i := 0; i < len(s); i++ {
		if id := t.byteID[s[i]]; id >= 0 {
			out = append(out, id)
		} else if t.unk >= 0 {
			out = append(out, t.unk)
		}
	}
	return out
}
