package doc

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	var w Writer
	w.Item("unfed-test", "1")
	w.Item("empty")
	w.Item("args", "a", "b=c", "$FP")
	w.Item("blob")
	w.Object("SIGNATURE", bytes.Repeat([]byte{0xab}, 100))
	w.Item("last", "x")
	b, err := w.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	items, err := Parse(b, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 5 {
		t.Fatalf("got %d items, want 5", len(items))
	}
	if items[2].Keyword != "args" || strings.Join(items[2].Args, "|") != "a|b=c|$FP" {
		t.Errorf("args item = %+v", items[2])
	}
	if items[3].Object == nil || !bytes.Equal(items[3].Object.Data, bytes.Repeat([]byte{0xab}, 100)) || items[3].Object.Tag != "SIGNATURE" {
		t.Errorf("object item = %+v", items[3])
	}
	if items[4].Line != 10 {
		t.Errorf("last item on line %d, want 10", items[4].Line)
	}
	if got := string(b[items[4].Offset:items[4].End]); got != "last x\n" {
		t.Errorf("offsets cover %q", got)
	}
	if items[3].End != items[4].Offset {
		t.Errorf("object item ends at %d, next starts at %d", items[3].End, items[4].Offset)
	}
}

func TestRejects(t *testing.T) {
	obj := "x\n-----BEGIN A-----\n" + strings.Repeat("A", 64) + "\nAA==\n-----END A-----\n"
	if _, err := Parse([]byte(obj), Limits{}); err != nil {
		t.Fatalf("canonical object rejected: %v", err)
	}
	cases := map[string]string{
		"empty":           "",
		"no final NL":     "a b",
		"empty line":      "a\n\nb\n",
		"double space":    "a  b\n",
		"trailing space":  "a b \n",
		"leading space":   " a\n",
		"tab":             "a\tb\n",
		"CR":              "a b\r\n",
		"non-ascii":       "a \xc3\xa9\n",
		"bad keyword":     "a_b c\n",
		"dash keyword":    "-a\n",
		"orphan object":   "-----BEGIN A-----\n-----END A-----\n",
		"unterminated":    "x\n-----BEGIN A-----\nAAAA\n",
		"mismatched end":  "x\n-----BEGIN A-----\nAAAA\n-----END B-----\n",
		"bad base64":      "x\n-----BEGIN A-----\nA!AA\n-----END A-----\n",
		"short then long": "x\n-----BEGIN A-----\nAAAA\n" + strings.Repeat("A", 64) + "\n-----END A-----\n",
		"long line":       "x\n-----BEGIN A-----\n" + strings.Repeat("A", 68) + "\n-----END A-----\n",
		"lower tag":       "x\n-----BEGIN a-----\n-----END a-----\n",
		"padding bits":    "x\n-----BEGIN A-----\nAB==\n-----END A-----\n",
	}
	for name, in := range cases {
		if _, err := Parse([]byte(in), Limits{}); !errors.Is(err, ErrSyntax) && !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: got %v, want a syntax error", name, err)
		}
	}
}

func TestLimits(t *testing.T) {
	cases := []struct {
		name string
		in   string
		lim  Limits
	}{
		{"size", "a\nb\n", Limits{MaxSize: 3}},
		{"line", "abcdef\n", Limits{MaxLine: 5}},
		{"items", "a\nb\nc\n", Limits{MaxItems: 2}},
		{"args", "a 1 2 3\n", Limits{MaxArgs: 2}},
		{"object", "x\n-----BEGIN A-----\nAAAAAAAA\n-----END A-----\n", Limits{MaxObject: 5}},
	}
	for _, c := range cases {
		if _, err := Parse([]byte(c.in), c.lim); !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: got %v, want ErrTooLarge", c.name, err)
		}
	}
}

func TestWriterRejectsBadInput(t *testing.T) {
	for _, f := range []func(*Writer){
		func(w *Writer) { w.Item("a b") },
		func(w *Writer) { w.Item("a", "b c") },
		func(w *Writer) { w.Item("a", "") },
		func(w *Writer) { w.Item("a", "x\n") },
		func(w *Writer) { w.Item("a"); w.Object("bad tag!", nil) },
	} {
		var w Writer
		f(&w)
		if _, err := w.Bytes(); err == nil {
			t.Errorf("writer accepted bad input: %q", w.buf.String())
		}
	}
}

// FuzzParse checks that Parse never panics and that whatever it accepts
// re-encodes to exactly the same bytes (the format is canonical).
func FuzzParse(f *testing.F) {
	f.Add([]byte("unfed-test 1\nargs a b=c\n"))
	f.Add([]byte("x\n-----BEGIN A-----\n" + strings.Repeat("A", 64) + "\nAA==\n-----END A-----\ny\n"))
	f.Add([]byte("a  b\n"))
	f.Add([]byte("-----BEGIN A-----\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		items, err := Parse(b, Limits{MaxSize: 1 << 16})
		if err != nil {
			return
		}
		var w Writer
		for _, it := range items {
			w.Item(it.Keyword, it.Args...)
			if it.Object != nil {
				w.Object(it.Object.Tag, it.Object.Data)
			}
		}
		out, err := w.Bytes()
		if err != nil {
			t.Fatalf("re-encoding accepted document: %v", err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("not canonical:\n%q\n%q", b, out)
		}
	})
}
