package tokenizer

import (
	"errors"
	"fmt"

	"github.com/unfed/unfed/compute/gguf"
)

// GGUF tokenizer metadata keys (spec §3.1).
const (
	KeyModel          = "tokenizer.ggml.model"
	KeyPre            = "tokenizer.ggml.pre"
	KeyTokens         = "tokenizer.ggml.tokens"
	KeyScores         = "tokenizer.ggml.scores"
	KeyTokenType      = "tokenizer.ggml.token_type"
	KeyMerges         = "tokenizer.ggml.merges"
	KeyBOS            = "tokenizer.ggml.bos_token_id"
	KeyEOS            = "tokenizer.ggml.eos_token_id"
	KeyUnknown        = "tokenizer.ggml.unknown_token_id"
	KeyEOT            = "tokenizer.ggml.eot_token_id"
	KeyEOM            = "tokenizer.ggml.eom_token_id"
	KeyAddBOS         = "tokenizer.ggml.add_bos_token"
	KeyAddSpacePrefix = "tokenizer.ggml.add_space_prefix"
	KeyChatTemplate   = "tokenizer.chat_template"
)

// FromGGUF builds the tokenizer described by a GGUF file's metadata.
// tokenizer.ggml.model must be "llama" or "gpt2".
func FromGGUF(f *gguf.File) (*Tokenizer, error) {
	model, err := f.String(KeyModel)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	v := vocab{eot: -1, eom: -1}
	switch model {
	case "llama":
		v.kind, v.space, v.bos, v.eos, v.unk = kindSPM, "▁", 1, 2, 0
		v.addBOS, v.addSpacePrefix = true, true
	case "gpt2":
		v.kind, v.bos, v.eos, v.unk = kindGPT2, -1, -1, -1
	default:
		return nil, fmt.Errorf("tokenizer: unsupported tokenizer model %q", model)
	}
	v.specials = true
	if err := arrayLen(f, KeyTokens, MaxVocab); err != nil {
		return nil, err
	}
	if v.tokens, err = f.StringArray(KeyTokens); err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	if _, ok := f.Get(KeyScores); ok {
		if v.scores, err = f.Float32Array(KeyScores); err != nil {
			return nil, fmt.Errorf("tokenizer: %w", err)
		}
	}
	if _, ok := f.Get(KeyTokenType); ok {
		tt, err := f.Int32Array(KeyTokenType)
		if err != nil {
			return nil, fmt.Errorf("tokenizer: %w", err)
		}
		v.types = make([]TokenType, len(tt))
		for i, x := range tt {
			v.types[i] = TokenType(x)
		}
	}
	for key, dst := range map[string]*int{KeyBOS: &v.bos, KeyEOS: &v.eos, KeyUnknown: &v.unk, KeyEOT: &v.eot, KeyEOM: &v.eom} {
		if err := optionalID(f, key, dst); err != nil {
			return nil, err
		}
	}
	for key, dst := range map[string]*bool{KeyAddBOS: &v.addBOS, KeyAddSpacePrefix: &v.addSpacePrefix} {
		if b, err := f.Bool(key); err == nil {
			*dst = b
		} else if !errors.Is(err, gguf.ErrMissing) {
			return nil, fmt.Errorf("tokenizer: %w", err)
		}
	}
	if s, err := f.String(KeyChatTemplate); err == nil {
		v.chatTemplate = s
	} else if !errors.Is(err, gguf.ErrMissing) {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	if v.kind == kindGPT2 {
		if err := arrayLen(f, KeyMerges, MaxMerges); err != nil {
			return nil, err
		}
		if v.merges, err = f.StringArray(KeyMerges); err != nil {
			return nil, fmt.Errorf("tokenizer: %w", err)
		}
		if s, err := f.String(KeyPre); err == nil {
			v.pre = s
		} else if !errors.Is(err, gguf.ErrMissing) {
			return nil, fmt.Errorf("tokenizer: %w", err)
		}
	}
	return build(v)
}

// arrayLen checks the length of an array before it is copied out.
func arrayLen(f *gguf.File, key string, limit int) error {
	v, ok := f.Get(key)
	if !ok {
		return fmt.Errorf("tokenizer: missing %s", key)
	}
	if v.Len() > limit {
		return fmt.Errorf("tokenizer: %s has %d entries (limit %d)", key, v.Len(), limit)
	}
	return nil
}

// optionalID reads a token id key; ids outside the vocabulary (such as
// 0xFFFFFFFF, used for "none") are dropped by build.
func optionalID(f *gguf.File, key string, dst *int) error {
	v, ok := f.Get(key)
	if !ok {
		return nil
	}
	x, ok := v.AsInt()
	if !ok {
		if _, isUint := v.AsUint(); isUint {
			*dst = -1 // larger than int64: no such token
			return nil
		}
		return fmt.Errorf("tokenizer: %s is %v, want an integer", key, v.Type())
	}
	if x < 0 || x >= MaxVocab {
		x = -1
	}
	*dst = int(x)
	return nil
}
