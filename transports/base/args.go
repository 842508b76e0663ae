package base

import (
	"fmt"
	"sort"
	"strings"
)

// Args are a transport's key=value arguments, as pt-spec and goptlib's pt.Args
// hold them: a key may carry several values, in order.
type Args map[string][]string

// Get returns the first value of key.
func (a Args) Get(key string) (string, bool) {
	v, ok := a[key]
	if !ok || len(v) == 0 {
		return "", false
	}
	return v[0], true
}

// Add appends value to key's values.
func (a Args) Add(key, value string) { a[key] = append(a[key], value) }

// Clone returns a deep copy of a (nil stays nil).
func (a Args) Clone() Args {
	if a == nil {
		return nil
	}
	out := make(Args, len(a))
	for k, v := range a {
		out[k] = append([]string(nil), v...)
	}
	return out
}

// Keys returns the keys of a in sorted order.
func (a Args) Keys() []string {
	ks := make([]string, 0, len(a))
	for k := range a {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Encode joins a as sorted key=value pairs separated by sep, escaping with a
// backslash every backslash, '=' and any byte in escape (pt-spec §3.5: ';' for
// SOCKS arguments, ',' for SMETHOD ARGS, ' ' never appears unescaped in bridge
// lines because callers reject it).
func (a Args) Encode(sep byte, escape string) string {
	var b strings.Builder
	first := true
	esc := func(s string) {
		for i := 0; i < len(s); i++ {
			c := s[i]
			if c == '\\' || c == '=' || c == sep || strings.IndexByte(escape, c) >= 0 {
				b.WriteByte('\\')
			}
			b.WriteByte(c)
		}
	}
	for _, k := range a.Keys() {
		for _, v := range a[k] {
			if !first {
				b.WriteByte(sep)
			}
			first = false
			esc(k)
			b.WriteByte('=')
			esc(v)
		}
	}
	return b.String()
}

// MaxArgsLen bounds an encoded argument string we parse.
const MaxArgsLen = 8192

// ParseArgs parses key=value pairs separated by sep with backslash escapes,
// the inverse of Encode. Empty input gives empty Args.
func ParseArgs(s string, sep byte) (Args, error) {
	if len(s) > MaxArgsLen {
		return nil, fmt.Errorf("base: argument string of %d bytes exceeds %d", len(s), MaxArgsLen)
	}
	args := Args{}
	if s == "" {
		return args, nil
	}
	var key, cur strings.Builder
	inValue := false
	flush := func() error {
		if !inValue {
			return fmt.Errorf("base: argument %q has no '='", cur.String())
		}
		if key.Len() == 0 {
			return fmt.Errorf("base: argument with empty key")
		}
		args.Add(key.String(), cur.String())
		key.Reset()
		cur.Reset()
		inValue = false
		return nil
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			i++
			if i >= len(s) {
				return nil, fmt.Errorf("base: argument string ends in an escape")
			}
			cur.WriteByte(s[i])
		case c == '=' && !inValue:
			key.WriteString(cur.String())
			cur.Reset()
			inValue = true
		case c == sep:
			if err := flush(); err != nil {
				return nil, err
			}
		default:
			cur.WriteByte(c)
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return args, nil
}
