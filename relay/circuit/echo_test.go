package circuit

import (
	"encoding/binary"
	"slices"
	"testing"

	"github.com/unfed/unfed/relay/cell"
)

func echoMsg(words ...uint32) []byte {
	var b []byte
	for _, w := range words {
		b = binary.BigEndian.AppendUint32(b, w)
	}
	return append(b, make([]byte, 16)...) // filler
}

// TestParseEcho: a PADDING's echo request (spec §4.5) is none, one size, or
// a count with that many sizes; anything else is malformed.
func TestParseEcho(t *testing.T) {
	for _, c := range []struct {
		name string
		msg  []byte
		want []int
		ok   bool
	}{
		{"none", echoMsg(0), nil, true},
		{"one", echoMsg(2000), []int{2000}, true},
		{"largest", echoMsg(cell.MaxMessage), []int{cell.MaxMessage}, true},
		{"three", echoMsg(1<<31|3, 137, 137, 3000), []int{137, 137, 3000}, true},
		{"short", []byte{0, 0}, nil, false},
		{"over the message limit", echoMsg(cell.MaxMessage + 1), nil, false},
		{"count zero", echoMsg(1 << 31), nil, false},
		{"count nine", echoMsg(1<<31|9, 1, 1, 1, 1, 1, 1, 1, 1, 1), nil, false},
		{"sizes missing", echoMsg(1<<31|3, 137)[:8], nil, false},
		{"a size zero", echoMsg(1<<31|2, 137, 0), nil, false},
		{"a size too large", echoMsg(1<<31|2, 137, cell.MaxMessage+1), nil, false},
	} {
		got, ok := parseEcho(c.msg)
		if ok != c.ok || !slices.Equal(got, c.want) {
			t.Errorf("%s: got %v, %v; want %v, %v", c.name, got, ok, c.want, c.ok)
		}
	}
}

// FuzzParseEcho: no input panics, and an accepted request asks for at most
// eight answers of 1..MaxMessage bytes.
func FuzzParseEcho(f *testing.F) {
	f.Add(echoMsg(0))
	f.Add(echoMsg(1<<31|3, 137, 137, 3000))
	f.Fuzz(func(t *testing.T, msg []byte) {
		got, ok := parseEcho(msg)
		if !ok {
			return
		}
		if len(got) > maxEchoes {
			t.Fatalf("%d echoes", len(got))
		}
		for _, e := range got {
			if e < 1 || e > cell.MaxMessage {
				t.Fatalf("echo of %d bytes", e)
			}
		}
	})
}
