package tokenizer

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// FromLlama2C reads a llama2.c tokenizer.bin (spec §3.8): an int32
// max_token_len, then vocabSize records of { float32 score, int32 len,
// len bytes }, all little-endian. Token 0 is unknown, 1 BOS, 2 EOS; "<0xXX>"
// tokens are byte fallbacks; spaces are stored as " ". Trailing bytes after
// the last record are ignored, as llama2.c does.
func FromLlama2C(r io.Reader, vocabSize int) (*Tokenizer, error) {
	if vocabSize <= 0 || vocabSize > MaxVocab {
		return nil, fmt.Errorf("tokenizer: llama2.c vocabulary size %d (1..%d)", vocabSize, MaxVocab)
	}
	br := bufio.NewReader(r)
	var hdr [8]byte
	if _, err := io.ReadFull(br, hdr[:4]); err != nil {
		return nil, fmt.Errorf("tokenizer: llama2.c header: %w", err)
	}
	maxLen := int32(binary.LittleEndian.Uint32(hdr[:4]))
	if maxLen <= 0 || maxLen > MaxTokenBytes {
		return nil, fmt.Errorf("tokenizer: llama2.c max_token_len %d (1..%d)", maxLen, MaxTokenBytes)
	}
	v := vocab{kind: kindSPM, space: " ", bos: 1, eos: 2, unk: 0, eot: -1, eom: -1,
		addBOS: true, addSpacePrefix: true}
	// Grow as records arrive rather than trusting vocabSize up front.
	buf := make([]byte, maxLen)
	for i := 0; i < vocabSize; i++ {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return nil, fmt.Errorf("tokenizer: llama2.c token %d: %w", i, noEOF(err))
		}
		score := math.Float32frombits(binary.LittleEndian.Uint32(hdr[:4]))
		n := int32(binary.LittleEndian.Uint32(hdr[4:]))
		if n < 0 || n > maxLen {
			return nil, fmt.Errorf("tokenizer: llama2.c token %d has length %d (max_token_len %d)", i, n, maxLen)
		}
		if _, err := io.ReadFull(br, buf[:n]); err != nil {
			return nil, fmt.Errorf("tokenizer: llama2.c token %d: %w", i, noEOF(err))
		}
		v.tokens = append(v.tokens, string(buf[:n]))
		v.scores = append(v.scores, score)
	}
	return build(v)
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
