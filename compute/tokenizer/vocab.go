package tokenizer

import (
	"fmt"
	"strconv"
	"strings"
)

// vocab is everything a Tokenizer is built from, whatever the file format.
type vocab struct {
	kind           kind
	tokens         []string
	scores         []float32   // SPM; nil means all 0
	types          []TokenType // nil means infer (inferTypes)
	merges         []string    // gpt2: "left right", best first
	pre            string      // gpt2 pre-tokenizer name
	bos, eos, unk  int         // -1: none
	eot, eom       int
	addBOS         bool
	addSpacePrefix bool
	space          string // SPM space marker
	chatTemplate   string
	specials       bool // match user-defined / control tokens in text
}

// eogTexts are control tokens that end generation in chat models even when
// the metadata does not name them (as llama.cpp does).
var eogTexts = map[string]bool{
	"<|im_end|>": true, "<|endoftext|>": true, "<|eot_id|>": true, "<|eom_id|>": true,
	"<|end|>": true, "<end_of_turn>": true, "<|end_of_text|>": true,
}

// parseByteToken returns the byte of a "<0xXX>" token.
func parseByteToken(s string) (byte, bool) {
	if len(s) != 6 || !strings.HasPrefix(s, "<0x") || s[5] != '>' {
		return 0, false
	}
	b, err := strconv.ParseUint(s[3:5], 16, 8)
	return byte(b), err == nil
}

// inferTypes guesses token types for vocabularies without them: the
// unknown, BOS and EOS ids, and "<0xXX>" byte tokens in SPM vocabularies.
func (v *vocab) inferTypes() []TokenType {
	types := make([]TokenType, len(v.tokens))
	for i, s := range v.tokens {
		types[i] = TypeNormal
		if _, ok := parseByteToken(s); ok && v.kind == kindSPM {
			types[i] = TypeByte
		}
	}
	for _, id := range []int{v.bos, v.eos, v.eot, v.eom} {
		if id >= 0 {
			types[id] = TypeControl
		}
	}
	if v.unk >= 0 {
		types[v.unk] = TypeUnknown
	}
	return types
}

func build(v vocab) (*Tokenizer, error) {
	n := len(v.tokens)
	if n == 0 || n > MaxVocab {
		return nil, fmt.Errorf("tokenizer: vocabulary of %d tokens (1..%d)", n, MaxVocab)
	}
	for i, s := range v.tokens {
		if len(s) > MaxTokenBytes {
			return nil, fmt.Errorf("tokenizer: token %d is %d bytes (limit %d)", i, len(s), MaxTokenBytes)
		}
	}
	if v.scores == nil {
		v.scores = make([]float32, n)
	}
	if len(v.scores) != n {
		return nil, fmt.Errorf("tokenizer: %d scores for %d tokens", len(v.scores), n)
	}
	for i, s := range v.scores {
		if s != s {
			return nil, fmt.Errorf("tokenizer: token %d has a NaN score", i)
		}
	}
	for _, id := range []*int{&v.bos, &v.eos, &v.unk, &v.eot, &v.eom} {
		if *id < 0 || *id >= n {
			*id = -1
		}
	}
	if v.types == nil {
		v.types = v.inferTypes()
	}
	if len(v.types) != n {
		return nil, fmt.Errorf("tokenizer: %d token types for %d tokens", len(v.types), n)
	}
	t := &Tokenizer{
		kind: v.kind, tokens: v.tokens, scores: v.scores, types: v.types,
		bos: v.bos, eos: v.eos, unk: v.unk, eot: v.eot, eom: v.eom,
		addBOS: v.addBOS, space: v.space, chatTemplate: v.chatTemplate,
		addSpacePrefix: v.kind == kindSPM && v.addSpacePrefix,
		pieces:         make([]string, n),
		ids:            make(map[string]int, n),
		eog:            map[int]bool{},
	}
	for i := range t.byteID {
		t.byteID[i] = -1
	}
	for id, s := range v.tokens {
		ty := v.types[id]
		switch ty {
		case TypeUndefined, TypeNormal, TypeUserDefined:
			if ty == TypeUserDefined && t.kind == kindGPT2 {
				t.pieces[id] = s // added tokens are stored as plain text
				break
			}
			if _, dup := t.ids[s]; !dup && s != "" {
				t.ids[s] = id // the first of duplicate texts wins
			}
			if t.kind == kindGPT2 {
				t.pieces[id] = byteDecode(s)
			} else {
				t.pieces[id] = strings.ReplaceAll(s, t.space, " ")
			}
		case TypeByte:
			b, ok := parseByteToken(s)
			if !ok {
				return nil, fmt.Errorf("tokenizer: byte token %d has text %q", id, s)
			}
			t.pieces[id] = string([]byte{b})
			if t.kind == kindSPM && t.byteID[b] < 0 {
				t.byteID[b] = id
			}
		case TypeUnknown:
			t.pieces[id] = unknownPiece
		case TypeControl, TypeUnused:
			if ty == TypeControl && eogTexts[s] {
				t.eog[id] = true
			}
		default:
			return nil, fmt.Errorf("tokenizer: token %d has unknown type %d", id, ty)
		}
	}
	if t.kind == kindGPT2 {
		for b := range t.byteID {
			if id, ok := t.ids[string(byteToRune[b])]; ok {
				t.byteID[b] = id
			}
		}
		if err := t.parseMerges(v.merges); err != nil {
			return nil, err
		}
		var err error
		if t.pre, err = preTokenizerByName(v.pre); err != nil {
			return nil, err
		}
	}
	for _, id := range []int{t.eos, t.eot, t.eom} {
		if id >= 0 {
			t.eog[id] = true
		}
	}
	if v.specials {
		t.specials = collectSpecials(v.tokens, v.types)
		if len(t.specials) > MaxSpecials {
			return nil, fmt.Errorf("tokenizer: %d special tokens (limit %d)", len(t.specials), MaxSpecials)
		}
	}
	return t, nil
}

func (t *Tokenizer) parseMerges(merges []string) error {
	if len(merges) > MaxMerges {
		return fmt.Errorf("tokenizer: %d merges (limit %d)", len(merges), MaxMerges)
	}
	t.merges = make(map[[2]string]int, len(merges))
	for rank, m := range merges {
		if len(m) > 2*MaxTokenBytes+1 {
			return fmt.Errorf("tokenizer: merge %d is %d bytes", rank, len(m))
		}
		sp := -1
		if len(m) > 1 {
			sp = strings.IndexByte(m[1:], ' ')
		}
		if sp < 0 || sp+2 >= len(m) {
			return fmt.Errorf("tokenizer: merge %d %q is not \"left right\"", rank, m)
		}
		key := [2]string{m[:sp+1], m[sp+2:]}
		if _, dup := t.merges[key]; !dup {
			t.merges[key] = rank
		}
	}
	return nil
}
