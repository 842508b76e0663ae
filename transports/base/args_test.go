package base

import (
	"strings"
	"testing"
)

func TestArgsEncodeParse(t *testing.T) {
	a := Args{"cert": {"a,b=c;d\\e"}, "iat-mode": {"0"}, "k": {"1", "2"}}
	for _, sep := range []byte{';', ','} {
		enc := a.Encode(sep, "")
		back, err := ParseArgs(enc, sep)
		if err != nil {
			t.Fatalf("%q: %v", enc, err)
		}
		if back.Encode(sep, "") != enc || back["cert"][0] != a["cert"][0] || len(back["k"]) != 2 {
			t.Fatalf("round trip of %q gave %v", enc, back)
		}
	}
	for _, bad := range []string{"novalue", "=v", "k=v;", "k=v\\", strings.Repeat("k", MaxArgsLen+1)} {
		if _, err := ParseArgs(bad, ';'); err == nil {
			t.Errorf("%.30q accepted", bad)
		}
	}
}

func FuzzParseArgs(f *testing.F) {
	f.Add("cert=abc;iat-mode=0", byte(';'))
	f.Add(`a\=b=c\,d,e=f`, byte(','))
	f.Add("", byte(';'))
	f.Fuzz(func(t *testing.T, s string, sep byte) {
		if sep == '\\' || sep == '=' {
			return
		}
		a, err := ParseArgs(s, sep)
		if err != nil {
			return
		}
		b, err := ParseArgs(a.Encode(sep, ""), sep)
		if err != nil {
			t.Fatalf("re-encoded %v does not parse: %v", a, err)
		}
		if a.Encode(sep, "") != b.Encode(sep, "") {
			t.Fatalf("round trip changed %v to %v", a, b)
		}
	})
}
