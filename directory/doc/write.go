package doc

import (
	"bytes"
	"encoding/base64"
	"fmt"
)

// Writer builds a document in the canonical form Parse accepts. The zero
// value is ready to use. The first invalid keyword, argument or tag is
// remembered and returned by Bytes, so callers can write a whole document and
// check once.
type Writer struct {
	buf bytes.Buffer
	err error
}

// Grow reserves room for n more bytes.
func (w *Writer) Grow(n int) { w.buf.Grow(n) }

// Item writes one keyword line.
func (w *Writer) Item(kw string, args ...string) {
	if w.err != nil {
		return
	}
	if !ValidKeyword(kw) {
		w.err = fmt.Errorf("doc: writing bad keyword %q", clip(kw))
		return
	}
	w.buf.WriteString(kw)
	for _, a := range args {
		if !ValidArg(a) {
			w.err = fmt.Errorf("doc: writing %s: bad argument %q", kw, clip(a))
			return
		}
		w.buf.WriteByte(' ')
		w.buf.WriteString(a)
	}
	w.buf.WriteByte('\n')
}

// Object writes an object after the last item, wrapped at 64 characters.
func (w *Writer) Object(tag string, data []byte) {
	if w.err != nil {
		return
	}
	if !validTag(tag) {
		w.err = fmt.Errorf("doc: writing bad object tag %q", clip(tag))
		return
	}
	w.buf.WriteString(beginPrefix + tag + dashes + "\n")
	enc := base64.StdEncoding.EncodeToString(data)
	for len(enc) > 0 {
		n := min(objLineLen, len(enc))
		w.buf.WriteString(enc[:n])
		w.buf.WriteByte('\n')
		enc = enc[n:]
	}
	w.buf.WriteString(endPrefix + tag + dashes + "\n")
}

// Len returns the number of bytes written so far.
func (w *Writer) Len() int { return w.buf.Len() }

// Bytes returns the document, or the first error met while writing it.
func (w *Writer) Bytes() ([]byte, error) {
	if w.err != nil {
		return nil, w.err
	}
	return w.buf.Bytes(), nil
}
