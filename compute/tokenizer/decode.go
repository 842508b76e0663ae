package tokenizer

import "unicode/utf8"

// Decoding (spec §3.7). Control and unused tokens produce nothing; byte
// tokens produce their byte; the unknown token produces "▅".

// piece returns the bytes of id, "" for ids out of range.
func (t *Tokenizer) piece(id int) string {
	if id < 0 || id >= len(t.pieces) {
		return ""
	}
	return t.pieces[id]
}

// Piece returns the bytes token id decodes to on its own (§3.7), with its
// leading space kept: nothing for control and unused tokens and for ids out
// of range. It is what OpenAI-style logprobs show as a token's text.
func (t *Tokenizer) Piece(id int) []byte {
	if t.isSilent(id) {
		return nil
	}
	return []byte(t.piece(id))
}

// isSilent reports tokens that decode to nothing and do not count as the
// first token of the text.
func (t *Tokenizer) isSilent(id int) bool {
	if id < 0 || id >= len(t.types) {
		return true
	}
	return t.types[id] == TypeControl || t.types[id] == TypeUnused
}

// Decode returns the text of ids. With a dummy prefix (llama vocabularies),
// the leading space of the first token that produces text is dropped, so
// Decode(Encode(s, b)) == s. Ids out of range are ignored. The result holds
// the decoded bytes as they are; it may be invalid UTF-8 if the ids are.
func (t *Tokenizer) Decode(ids []int) string {
	out := make([]byte, 0, 4*len(ids))
	first := true
	for _, id := range ids {
		if t.isSilent(id) {
			continue
		}
		p := t.piece(id)
		if first && t.addSpacePrefix && len(p) > 0 && p[0] == ' ' {
			p = p[1:]
		}
		first = false
		out = append(out, p...)
	}
	return string(out)
}

// StreamDecoder decodes a token stream incrementally, as it is generated.
// The zero value is not usable; get one from NewStreamDecoder.
type StreamDecoder struct {
	t       *Tokenizer
	prev    int
	pending []byte // an incomplete UTF-8 sequence, at most 3 bytes
}

// NewStreamDecoder returns a decoder for a new stream of tokens.
func (t *Tokenizer) NewStreamDecoder() *StreamDecoder {
	return &StreamDecoder{t: t, prev: -1}
}

// Next adds a token and returns the text that is now complete. A UTF-8
// character split across byte tokens is held back and returned whole with
// the token that completes it; bytes that can never form a character are
// returned as they are. As llama2.c does, with a dummy prefix (llama
// vocabularies) a token right after BOS loses its leading space, so feeding
// BOS then a prompt's or continuation's tokens gives the text without the
// prefix space. For ids that start with BOS, the concatenation of every Next
// and the final Flush equals Decode(ids).
func (d *StreamDecoder) Next(id int) string {
	t := d.t
	prev := d.prev
	d.prev = id
	if t.isSilent(id) {
		return ""
	}
	p := t.piece(id)
	if t.addSpacePrefix && prev == t.bos && t.bos >= 0 && len(p) > 0 && p[0] == ' ' {
		p = p[1:]
	}
	d.pending = append(d.pending, p...)
	cut := completePrefix(d.pending)
	out := string(d.pending[:cut])
	d.pending = append(d.pending[:0], d.pending[cut:]...)
	return out
}

// Flush returns any bytes still held back (an incomplete character at the
// end of the stream).
func (d *StreamDecoder) Flush() string {
	out := string(d.pending)
	d.pending = d.pending[:0]
	return out
}

// completePrefix returns the length of b without a trailing incomplete (but
// so far valid) UTF-8 sequence.
func completePrefix(b []byte) int {
	for k := 1; k <= utf8.UTFMax && k <= len(b); k++ {
		i := len(b) - k
		if !utf8.RuneStart(b[i]) {
			continue
		}
		if !utf8.FullRune(b[i:]) {
			return i
		}
		break
	}
	return len(b)
}
