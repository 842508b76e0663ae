// Package doc owns the keyword-line meta-format shared by every UNFED
// directory document (spec/04-directory.md §2), modelled on Tor's dir-spec
// §1.2: a document is a sequence of items, each a keyword line
//
//	Keyword SP Arg SP Arg ... NL
//
// optionally followed by one PEM-style object
//
//	-----BEGIN TAG-----
//	base64 lines of at most 64 characters
//	-----END TAG-----
//
// The format is strict so that it is canonical: only printable ASCII and NL,
// exactly one space between arguments, no empty lines, no trailing spaces, a
// final NL. Parse enforces limits on document size, line length, argument
// count, item count and object size, so a peer cannot make us allocate more
// than the caller allowed. Writer produces the same canonical form.
//
// This package knows nothing about descriptors, votes or consensuses; it is a
// pure codec. Only directory/ should import it.
package doc

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Limits bound what Parse accepts. A zero field means the default.
type Limits struct {
	// MaxSize is the largest document in bytes; 0 means 64 KiB.
	MaxSize int
	// MaxLine is the longest keyword line in bytes, without NL; 0 means 4096.
	MaxLine int
	// MaxItems is the largest number of items; 0 means 1024.
	MaxItems int
	// MaxArgs is the largest number of arguments on one line; 0 means 64.
	MaxArgs int
	// MaxObject is the largest decoded object in bytes; 0 means 8 KiB.
	MaxObject int
}

func (l Limits) withDefaults() Limits {
	if l.MaxSize <= 0 {
		l.MaxSize = 64 << 10
	}
	if l.MaxLine <= 0 {
		l.MaxLine = 4096
	}
	if l.MaxItems <= 0 {
		l.MaxItems = 1024
	}
	if l.MaxArgs <= 0 {
		l.MaxArgs = 64
	}
	if l.MaxObject <= 0 {
		l.MaxObject = 8 << 10
	}
	return l
}

// Item is one keyword line and its optional object.
type Item struct {
	Keyword string
	Args    []string
	Object  *Object
	// Line is the 1-based line number of the keyword line.
	Line int
	// Offset is the byte offset of the keyword line; End is the offset just
	// past the item (after its object, if any). Signatures are computed over
	// document prefixes, so parsers of signed documents need them.
	Offset, End int
}

// Object is a PEM-style object attached to an item.
type Object struct {
	Tag  string
	Data []byte
}

// ErrSyntax is wrapped by every error Parse returns.
var ErrSyntax = errors.New("doc: syntax error")

// ErrTooLarge is wrapped when a limit is exceeded.
var ErrTooLarge = errors.New("doc: limit exceeded")

const (
	beginPrefix = "-----BEGIN "
	endPrefix   = "-----END "
	dashes      = "-----"
	objLineLen  = 64
)

// Parse splits a document into items, enforcing the canonical syntax and lim.
// Item arguments are substrings of one copy of b, so the document is copied
// once however many items it holds.
func Parse(b []byte, lim Limits) ([]Item, error) {
	lim = lim.withDefaults()
	if len(b) > lim.MaxSize {
		return nil, fmt.Errorf("%w: document is %d bytes, limit %d", ErrTooLarge, len(b), lim.MaxSize)
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty document", ErrSyntax)
	}
	if b[len(b)-1] != '\n' {
		return nil, fmt.Errorf("%w: document does not end with a newline", ErrSyntax)
	}
	s := string(b)
	items := make([]Item, 0, min(lim.MaxItems, 1+strings.Count(s, "\n")))
	pos, line := 0, 0
	for pos < len(s) {
		l, next, err := readLine(s, pos, lim.MaxLine)
		line++
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if strings.HasPrefix(l, dashes) {
			return nil, fmt.Errorf("%w: line %d: object without an item", ErrSyntax, line)
		}
		if len(items) == lim.MaxItems {
			return nil, fmt.Errorf("%w: more than %d items", ErrTooLarge, lim.MaxItems)
		}
		it := Item{Line: line, Offset: pos}
		if it.Keyword, it.Args, err = splitLine(l, lim.MaxArgs); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		pos = next
		if pos < len(s) && strings.HasPrefix(s[pos:], beginPrefix) {
			obj, n, lines, err := readObject(s, pos, lim)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", line+1, err)
			}
			it.Object = obj
			pos = n
			line += lines
		}
		it.End = pos
		items = append(items, it)
	}
	return items, nil
}

// readLine returns the line starting at pos (without NL) and the offset of
// the next line, checking the character set and length.
func readLine(s string, pos, maxLine int) (string, int, error) {
	end := strings.IndexByte(s[pos:], '\n')
	if end < 0 { // unreachable: Parse checked the final NL
		return "", 0, fmt.Errorf("%w: unterminated line", ErrSyntax)
	}
	if end > maxLine {
		return "", 0, fmt.Errorf("%w: line is %d bytes, limit %d", ErrTooLarge, end, maxLine)
	}
	l := s[pos : pos+end]
	for i := 0; i < len(l); i++ {
		if c := l[i]; c < 0x20 || c > 0x7e {
			return "", 0, fmt.Errorf("%w: byte 0x%02x at column %d", ErrSyntax, c, i+1)
		}
	}
	return l, pos + end + 1, nil
}

func splitLine(l string, maxArgs int) (string, []string, error) {
	if l == "" {
		return "", nil, fmt.Errorf("%w: empty line", ErrSyntax)
	}
	kw, rest, hasArgs := strings.Cut(l, " ")
	if !ValidKeyword(kw) {
		return "", nil, fmt.Errorf("%w: bad keyword %q", ErrSyntax, clip(kw))
	}
	if !hasArgs {
		return kw, nil, nil
	}
	n := strings.Count(rest, " ") + 1
	if n > maxArgs {
		return "", nil, fmt.Errorf("%w: %d arguments, limit %d", ErrTooLarge, n, maxArgs)
	}
	args := make([]string, 0, n)
	for a := range strings.SplitSeq(rest, " ") {
		if a == "" {
			return "", nil, fmt.Errorf("%w: %s: empty argument (double or trailing space)", ErrSyntax, kw)
		}
		args = append(args, a)
	}
	return kw, args, nil
}

// readObject reads an object starting at pos; it returns the object, the
// offset after it and the number of lines it spanned.
func readObject(s string, pos int, lim Limits) (*Object, int, int, error) {
	begin, next, err := readLine(s, pos, lim.MaxLine)
	if err != nil {
		return nil, 0, 0, err
	}
	tag, ok := strings.CutSuffix(strings.TrimPrefix(begin, beginPrefix), dashes)
	if !ok || !validTag(tag) {
		return nil, 0, 0, fmt.Errorf("%w: bad object begin line", ErrSyntax)
	}
	maxB64 := base64.StdEncoding.EncodedLen(lim.MaxObject)
	var body strings.Builder
	lines, sawShort := 1, false
	for pos = next; ; pos = next {
		if pos >= len(s) {
			return nil, 0, 0, fmt.Errorf("%w: object %q is not terminated", ErrSyntax, tag)
		}
		var l string
		if l, next, err = readLine(s, pos, lim.MaxLine); err != nil {
			return nil, 0, 0, err
		}
		lines++
		if strings.HasPrefix(l, dashes) {
			if l != endPrefix+tag+dashes {
				return nil, 0, 0, fmt.Errorf("%w: object %q has a bad end line", ErrSyntax, tag)
			}
			break
		}
		// Canonical: every body line but the last is exactly 64 characters.
		if len(l) == 0 || len(l) > objLineLen || sawShort {
			return nil, 0, 0, fmt.Errorf("%w: object %q is not wrapped at %d characters", ErrSyntax, tag, objLineLen)
		}
		sawShort = len(l) < objLineLen
		if body.Len()+len(l) > maxB64 {
			return nil, 0, 0, fmt.Errorf("%w: object %q larger than %d bytes", ErrTooLarge, tag, lim.MaxObject)
		}
		body.WriteString(l)
	}
	enc := body.String()
	data, err := base64.StdEncoding.Strict().DecodeString(enc)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("%w: object %q: %v", ErrSyntax, tag, err)
	}
	if len(data) > lim.MaxObject {
		return nil, 0, 0, fmt.Errorf("%w: object %q larger than %d bytes", ErrTooLarge, tag, lim.MaxObject)
	}
	return &Object{Tag: tag, Data: data}, next, lines, nil
}

// ValidKeyword reports whether kw is a keyword: 1 to 64 characters from
// A-Z, a-z, 0-9 and '-', not starting with '-'.
func ValidKeyword(kw string) bool {
	if kw == "" || len(kw) > 64 || kw[0] == '-' {
		return false
	}
	for i := 0; i < len(kw); i++ {
		c := kw[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func validTag(tag string) bool {
	if tag == "" || len(tag) > 64 || tag[0] == ' ' || tag[len(tag)-1] == ' ' {
		return false
	}
	for i := 0; i < len(tag); i++ {
		c := tag[i]
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == ' ') {
			return false
		}
	}
	return true
}

// ValidArg reports whether a is a non-empty argument: printable ASCII
// without spaces.
func ValidArg(a string) bool {
	if a == "" {
		return false
	}
	for i := 0; i < len(a); i++ {
		if c := a[i]; c <= 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

func clip(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}
