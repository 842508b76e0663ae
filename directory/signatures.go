package directory

import (
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/unfed/unfed/directory/doc"
)

// Detached consensus signatures, exchanged between authorities in the
// signature phase (spec/04-directory.md §9.3):
//
//	unfed-consensus-signatures 1
//	valid-after YYYY-MM-DD HH:MM:SS
//	consensus-digest <64 hex digits>
//	directory-signature ...        (one or more, as in a consensus)

type detachedSigs struct {
	validAfter time.Time
	digest     [32]byte
	sigs       []Signature
}

// MaxSignaturesDocSize bounds a detached signatures document.
const MaxSignaturesDocSize = 512 << 10

func (d *detachedSigs) encode() ([]byte, error) {
	var w doc.Writer
	w.Item("unfed-consensus-signatures", "1")
	w.Item("valid-after", timeArgs(d.validAfter)...)
	w.Item("consensus-digest", hex.EncodeToString(d.digest[:]))
	sortSignatures(d.sigs)
	encodeSignatures(&w, d.sigs)
	return w.Bytes()
}

func parseDetachedSigs(b []byte) (*detachedSigs, error) {
	items, err := doc.Parse(b, doc.Limits{MaxSize: MaxSignaturesDocSize, MaxLine: 8192, MaxItems: 3 + maxSignatures, MaxObject: 16 << 10})
	if err != nil {
		return nil, err
	}
	if len(items) < 4 || items[0].Keyword != "unfed-consensus-signatures" || len(items[0].Args) < 1 || items[0].Args[0] != "1" ||
		items[1].Keyword != "valid-after" || items[2].Keyword != "consensus-digest" || len(items[2].Args) < 1 {
		return nil, errors.New("want unfed-consensus-signatures 1, valid-after, consensus-digest, signatures")
	}
	d := &detachedSigs{}
	if d.validAfter, err = parseTimeArgs(items[1].Args); err != nil {
		return nil, err
	}
	dg, err := hex.DecodeString(items[2].Args[0])
	if err != nil || len(dg) != 32 || hex.EncodeToString(dg) != items[2].Args[0] {
		return nil, fmt.Errorf("bad consensus digest %q", clip(items[2].Args[0]))
	}
	copy(d.digest[:], dg)
	p := statusParser{s: &statusDoc{}}
	for _, it := range items[3:] {
		if err := p.signature(it); err != nil {
			return nil, fmt.Errorf("line %d: %v", it.Line, err)
		}
	}
	d.sigs = p.s.sigs
	return d, nil
}
