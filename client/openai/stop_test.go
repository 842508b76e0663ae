package openai

import (
	"strings"
	"testing"
)

func TestStopper(t *testing.T) {
	cases := []struct {
		name    string
		stops   []string
		pieces  []string
		want    string
		stopped bool
	}{
		{"no stops", nil, []string{"a", "b"}, "ab", false},
		{"stop inside one piece", []string{"END"}, []string{"abcENDxyz"}, "abc", true},
		{"stop split over pieces", []string{"END"}, []string{"ab", "cE", "N", "Dxyz"}, "abc", true},
		{"false start released", []string{"END"}, []string{"ab", "cE", "N", "x"}, "abcENx", false},
		{"held prefix released at end", []string{"END"}, []string{"abcEN"}, "abcEN", false},
		{"earliest of several", []string{"zz", "b"}, []string{"a", "bzz"}, "a", true},
		{"overlapping prefixes", []string{"aab"}, []string{"a", "a", "a", "b"}, "a", true},
		{"stop at start", []string{"\n"}, []string{"\n", "more"}, "", true},
		{"multibyte", []string{"ß!"}, []string{"straß", "e", "ß", "!"}, "straße", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := &stopper{stops: c.stops}
			var got strings.Builder
			stopped := false
			for _, p := range c.pieces {
				out, st := s.push(p)
				got.WriteString(out)
				if st {
					stopped = true
					break
				}
			}
			if !stopped {
				got.WriteString(s.flush())
			}
			if got.String() != c.want || stopped != c.stopped {
				t.Fatalf("got %q stopped=%v, want %q stopped=%v", got.String(), stopped, c.want, c.stopped)
			}
		})
	}
}

// TestStopperHoldsOnlyPrefixes checks that text which cannot start a stop
// sequence is released at once, so streaming is not delayed by stops.
func TestStopperHoldsOnlyPrefixes(t *testing.T) {
	s := &stopper{stops: []string{"<|im_end|>"}}
	if out, _ := s.push("Hello <"); out != "Hello " {
		t.Fatalf("released %q, want %q", out, "Hello ")
	}
	if out, _ := s.push("b>"); out != "<b>" {
		t.Fatalf("released %q, want %q", out, "<b>")
	}
}

func FuzzStopper(f *testing.F) {
	f.Add("ab", "cENDx", "END")
	f.Add("a", "aab", "aab")
	f.Fuzz(func(t *testing.T, p1, p2, stop string) {
		if stop == "" {
			return
		}
		s := &stopper{stops: []string{stop}}
		a, st := s.push(p1)
		out := a
		if !st {
			b, st2 := s.push(p2)
			out += b
			if !st2 {
				out += s.flush()
			}
		}
		full := p1 + p2
		want := full
		if i := strings.Index(full, stop); i >= 0 {
			want = full[:i]
		}
		if out != want {
			t.Fatalf("pieces %q %q stop %q: got %q, want %q", p1, p2, stop, out, want)
		}
	})
}

func BenchmarkStopperPush(b *testing.B) {
	s := &stopper{stops: []string{"THE END", "<|im_end|>", "<|im_start|>"}}
	for b.Loop() {
		if _, stopped := s.push(" word"); stopped {
			b.Fatal("stopped")
		}
	}
}
