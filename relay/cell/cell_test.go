package cell

import (
	"bytes"
	"errors"
	"testing"
)

func TestCellRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, ClassSmall - HeaderLen, ClassSmall - HeaderLen + 1, ClassMedium - HeaderLen, MaxPayload} {
		p := bytes.Repeat([]byte{0xAB}, n)
		f, err := Encode(Cell{CircID: 0x80000001, Cmd: CmdRelayForward, Payload: p})
		if err != nil {
			t.Fatalf("%d: %v", n, err)
		}
		if Capacity(len(f)) < n || (n > 0 && Capacity(ClassFor(n-1)) < n-1) {
			t.Fatalf("%d: frame of %d bytes", n, len(f))
		}
		c, err := Decode(f)
		if err != nil || c.CircID != 0x80000001 || c.Cmd != CmdRelayForward || !bytes.Equal(c.Payload, p) {
			t.Fatalf("%d: decode %+v %v", n, c.Cmd, err)
		}
	}
	if _, err := Encode(Cell{Payload: make([]byte, MaxPayload+1)}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized payload encoded: %v", err)
	}
}

func TestDecodeRejects(t *testing.T) {
	good, _ := Encode(Cell{CircID: 1, Cmd: CmdDestroy, Payload: []byte{1}})
	cases := map[string][]byte{
		"short":   good[:100],
		"long":    append(good, 0),
		"empty":   nil,
		"length":  func() []byte { f := bytes.Clone(good); f[5], f[6] = 0xFF, 0xFF; return f }(),
		"padding": func() []byte { f := bytes.Clone(good); f[len(f)-1] = 1; return f }(),
	}
	for name, f := range cases {
		if _, err := Decode(f); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// An unknown command decodes; the switch drops it.
	f := bytes.Clone(good)
	f[4] = 99
	if c, err := Decode(f); err != nil || c.Cmd.Known() {
		t.Errorf("unknown command: %v %v", c.Cmd, err)
	}
}

func TestRelayMsgAndReassembly(t *testing.T) {
	buf := make([]byte, 100)
	if !PutRelayMsg(buf, KindData, true, []byte("hello")) {
		t.Fatal("did not fit")
	}
	m, err := ParseRelayMsg(buf)
	if err != nil || m.Kind != KindData || !m.More || string(m.Data) != "hello" {
		t.Fatalf("%+v %v", m, err)
	}
	if PutRelayMsg(make([]byte, 5), KindData, false, []byte("hello")) {
		t.Fatal("overflow accepted")
	}
	var r Reassembler
	if _, done, _ := r.Add(KindData, true, []byte("ab")); done {
		t.Fatal("done early")
	}
	if _, _, err := r.Add(KindExtend, false, []byte("x")); !errors.Is(err, ErrReassembly) {
		t.Fatal("kind switch accepted")
	}
	r.Add(KindData, true, []byte("ab"))
	msg, done, err := r.Add(KindData, false, []byte("cd"))
	if !done || err != nil || string(msg) != "abcd" {
		t.Fatalf("%q %v %v", msg, done, err)
	}
	big := make([]byte, MaxMessage/2+1)
	r.Add(KindData, true, big)
	if _, _, err := r.Add(KindData, true, big); !errors.Is(err, ErrReassembly) {
		t.Fatal("oversized message accepted")
	}
	if r.Pending() != 0 {
		t.Fatal("buffer kept after error")
	}
}

func TestExtendRoundTrip(t *testing.T) {
	e := Extend{Specs: []LinkSpec{{Transport: "tcp", Addr: "127.0.0.1:9001", Args: ""}, {Transport: "obfs4", Addr: "[::1]:443", Args: "cert=abc iat-mode=0"}},
		Handshake: Handshake{Type: 2, Data: bytes.Repeat([]byte{7}, 1204)}}
	e.Fingerprint[0] = 0x42
	e.Specs[0].LinkKey[31] = 9
	b, err := AppendExtend(nil, e)
	if err != nil {
		t.Fatal(err)
	}
	d, err := ParseExtend(b)
	if err != nil {
		t.Fatal(err)
	}
	if d.Fingerprint != e.Fingerprint || len(d.Specs) != 2 || d.Specs[1] != e.Specs[1] || d.Specs[0] != e.Specs[0] ||
		d.Handshake.Type != 2 || !bytes.Equal(d.Handshake.Data, e.Handshake.Data) {
		t.Fatalf("round trip differs: %+v", d.Specs)
	}
	for i := range b {
		ParseExtend(b[:i]) // no panic on truncation
	}
	if _, err := AppendExtend(nil, Extend{}); err == nil {
		t.Fatal("extend without link specifiers encoded")
	}
}

func TestEdge(t *testing.T) {
	p := make([]byte, EdgeHeaderLen+3)
	PutEdge(p, Edge{Dir: Forward, Remaining: 2, Traveled: 1, More: true})
	copy(p[EdgeHeaderLen:], "abc")
	e, err := ParseEdge(p)
	if err != nil || e.Dir != Forward || e.Remaining != 2 || e.Traveled != 1 || !e.More || string(e.Data) != "abc" {
		t.Fatalf("%+v %v", e, err)
	}
	PutEdge(p, Edge{Dir: Backward, Remaining: 1, Traveled: 1})
	if _, err := ParseEdge(p); !errors.Is(err, ErrEdge) {
		t.Fatal("multi-hop backward edge accepted")
	}
	PutEdge(p, Edge{Dir: Forward, Traveled: 0})
	if _, err := ParseEdge(p); !errors.Is(err, ErrEdge) {
		t.Fatal("traveled 0 accepted")
	}
}

func FuzzDecode(f *testing.F) {
	for _, c := range []Cell{{CircID: 1, Cmd: CmdCreate, Payload: []byte{0, 1, 0, 2, 9, 9}}, {Cmd: CmdPadding}, {CircID: 7, Cmd: CmdRelayBackward, Payload: make([]byte, 600)}} {
		b, _ := Encode(c)
		f.Add(b)
	}
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Decode(b)
		if err != nil {
			return
		}
		again, err := EncodeClass(c, len(b))
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs: %v", err)
		}
	})
}

func FuzzRelayMsg(f *testing.F) {
	buf := make([]byte, 64)
	PutRelayMsg(buf, KindSendme, false, Sendme(4096))
	f.Add(buf)
	f.Add([]byte{1, 1, 0xFF, 0xFF})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseRelayMsg(b)
		if err != nil {
			return
		}
		if len(m.Data) > len(b)-RelayHeaderLen {
			t.Fatal("data beyond input")
		}
		ParseSendme(m.Data)
		var r Reassembler
		r.Add(m.Kind, m.More, m.Data)
		ParseEdge(b)
		ParseHandshake(b)
	})
}

func FuzzExtend(f *testing.F) {
	b, _ := AppendExtend(nil, Extend{Specs: []LinkSpec{{Transport: "tcp", Addr: "127.0.0.1:1"}}, Handshake: Handshake{Type: 1, Data: make([]byte, 84)}})
	f.Add(b)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParseExtend(b)
		if err != nil {
			return
		}
		if _, err := AppendExtend(nil, e); err != nil {
			t.Fatalf("decoded extend does not re-encode: %v", err)
		}
	})
}

// TestFragment checks the sender's choice of classes (spec §4.4): the
// smallest class that holds a short message, medium cells rather than one
// large cell padded around a few kilobytes, large cells for the bulk of a
// long message, and fragments that together carry the message exactly.
func TestFragment(t *testing.T) {
	room := func(cl int) int { return Capacity(cl) - 4 }
	cases := []struct {
		n, class, take int
	}{
		{0, ClassSmall, 0},
		{1, ClassSmall, 1},
		{501, ClassSmall, 501},
		{502, ClassSmall, 501},    // two small cells weigh 5120, one medium 6144
		{1036, ClassMedium, 1036}, // three small cells would weigh 7680
		{4085, ClassMedium, 4085},
		{5516, ClassMedium, 4085}, // two medium cells, not 63.5 KB
		{40000, ClassMedium, 4085},
		{47000, ClassLarge, 47000}, // twelve medium cells would weigh 73728
		{70000, ClassLarge, 65013}, // then two medium cells for the rest
		{65013, ClassLarge, 65013},
	}
	for _, c := range cases {
		class, take := Fragment(c.n, room)
		if class != c.class || take != c.take {
			t.Errorf("Fragment(%d) = %d, %d; want %d, %d", c.n, class, take, c.class, c.take)
		}
	}
	for _, n := range []int{0, 3, 505, 4096, 9000, 65013, 65014, 200000, 1 << 20} {
		left, cells := n, 0
		for first := true; first || left > 0; first = false {
			class, take := Fragment(left, room)
			if take > room(class) || take > left || (take == 0 && left > 0) {
				t.Fatalf("n=%d: fragment of %d bytes in class %d with %d left", n, take, class, left)
			}
			left -= take
			cells++
		}
		if cells > n/4085+2 {
			t.Errorf("n=%d: %d cells", n, cells)
		}
	}
}

// BenchmarkReassemble joins a 1 MiB edge message from large cells' worth of
// fragments, as a party receives a PREP: B/op is what one message costs in
// allocation (growing the buffer by a quarter at a time cost about five
// times the message, and as many copies).
//
// "owned" hands the fragments over (AddEdgeOwned, as the circuit layer
// does with the frames its link reader made) and joins them once.
func BenchmarkReassemble(b *testing.B) {
	frag := make([]byte, MaxPayload-16)
	n := MaxMessage / len(frag)
	for _, owned := range []bool{false, true} {
		b.Run(map[bool]string{false: "copy", true: "owned"}[owned], func(b *testing.B) {
			b.SetBytes(int64(n * len(frag)))
			b.ReportAllocs()
			var r Reassembler
			add := r.AddEdge
			if owned {
				add = r.AddEdgeOwned
			}
			for b.Loop() {
				for i := 0; i < n; i++ {
					msg, done, err := add(i < n-1, frag)
					if err != nil || done != (i == n-1) || (done && len(msg) != n*len(frag)) {
						b.Fatalf("fragment %d: done %v, %d bytes, %v", i, done, len(msg), err)
					}
				}
			}
		})
	}
}

// TestReassembleOwned: AddEdgeOwned joins fragments as AddEdge does, returns
// a single fragment itself, enforces MaxMessage, and refuses to be mixed with
// Add inside one message.
func TestReassembleOwned(t *testing.T) {
	var r Reassembler
	one := []byte("peer openings")
	msg, done, err := r.AddEdgeOwned(false, one)
	if err != nil || !done || &msg[0] != &one[0] {
		t.Fatalf("one fragment: %q %v %v (want the fragment itself)", msg, done, err)
	}
	parts := [][]byte{[]byte("ab"), []byte("cde"), []byte("f")}
	for i, p := range parts {
		msg, done, err = r.AddEdgeOwned(i < len(parts)-1, p)
		if err != nil || done != (i == len(parts)-1) {
			t.Fatalf("fragment %d: %v %v", i, done, err)
		}
		if !done && r.Pending() == 0 {
			t.Fatalf("fragment %d: nothing pending", i)
		}
	}
	if string(msg) != "abcdef" || r.Pending() != 0 {
		t.Fatalf("joined %q, pending %d", msg, r.Pending())
	}
	big := make([]byte, MaxMessage/2+1)
	if _, _, err := r.AddEdgeOwned(true, big); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.AddEdgeOwned(false, big); !errors.Is(err, ErrReassembly) || r.Pending() != 0 {
		t.Fatalf("over MaxMessage: %v, pending %d", err, r.Pending())
	}
	if _, _, err := r.AddEdge(true, one); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.AddEdgeOwned(false, one); !errors.Is(err, ErrReassembly) {
		t.Fatalf("owned after copied: %v", err)
	}

	// A fragment of a few bytes in a large frame is copied, not kept with
	// its frame, and a message of too many fragments is refused.
	frame := make([]byte, ClassLarge)
	tiny := frame[10:14]
	msg, _, err = r.AddEdgeOwned(false, tiny)
	if err != nil || len(msg) != 4 || cap(msg) >= ClassLarge/2 {
		t.Fatalf("tiny fragment: len %d cap %d, %v (want a copy)", len(msg), cap(msg), err)
	}
	for i := 0; ; i++ {
		_, _, err := r.AddEdgeOwned(true, frame[10:11])
		if err != nil {
			if !errors.Is(err, ErrReassembly) || i != maxParts || r.Pending() != 0 {
				t.Fatalf("fragment %d: %v, pending %d (want a refusal at %d)", i, err, r.Pending(), maxParts)
			}
			break
		}
		if i > maxParts {
			t.Fatalf("%d one-byte fragments held", i)
		}
	}
}

// FuzzReassemble cuts b into fragments at the lengths in cuts and feeds them
// to AddEdge and to AddEdgeOwned: both give the same messages, errors and
// pending counts.
func FuzzReassemble(f *testing.F) {
	f.Add([]byte("hello world"), []byte{3, 0, 4})
	f.Add(make([]byte, 100), []byte{0, 0, 0})
	f.Fuzz(func(t *testing.T, b, cuts []byte) {
		var rc, ro Reassembler
		for i := 0; len(b) > 0 || i < len(cuts); i++ {
			if i >= maxParts {
				return // AddEdgeOwned refuses more (TestReassembleOwned)
			}
			n := len(b)
			more := false
			if i < len(cuts) && int(cuts[i]) < n {
				n, more = int(cuts[i]), true
			}
			frag := b[:n]
			b = b[n:]
			mc, dc, ec := rc.AddEdge(more, frag)
			mo, do, eo := ro.AddEdgeOwned(more, append([]byte(nil), frag...))
			if string(mc) != string(mo) || dc != do || (ec == nil) != (eo == nil) || rc.Pending() != ro.Pending() {
				t.Fatalf("fragment %d: copy (%q %v %v %d), owned (%q %v %v %d)", i, mc, dc, ec, rc.Pending(), mo, do, eo, ro.Pending())
			}
			if i >= len(cuts) {
				break
			}
		}
	})
}

// TestReassembleFrames: AddEdgeFrame joins as AddEdgeOwned does, and the
// message it returns is its own: the frames it handed back to the free list
// (whose next user overwrites them) are not part of it. A single fragment
// keeps its frame; only whole large frames go to the free list.
func TestReassembleFrames(t *testing.T) {
	var r Reassembler
	var frames [][]byte
	var want []byte
	for i := range 3 {
		f := NewLarge()
		for j := range f {
			f[j] = byte(i + j)
		}
		data := f[HeaderLen+EdgeHeaderLen : ClassLarge-100]
		want = append(want, data...)
		msg, done, err := r.AddEdgeFrame(i < 2, data, f)
		if err != nil || done != (i == 2) {
			t.Fatalf("fragment %d: %v %v", i, done, err)
		}
		if done && !bytes.Equal(msg, want) {
			t.Fatal("joined message differs")
		}
		frames = append(frames, f)
		if done {
			for _, f := range frames {
				clear(f)
			}
			if !bytes.Equal(msg, want) {
				t.Fatal("the joined message shares bytes with its frames")
			}
		}
	}
	f := NewLarge()
	data := f[HeaderLen+EdgeHeaderLen:]
	msg, done, err := r.AddEdgeFrame(false, data, f)
	if err != nil || !done || &msg[0] != &data[0] {
		t.Fatalf("one fragment: %v %v (want the fragment itself)", done, err)
	}
	// Joins of more than half of 8 KiB go into buffers of a power of
	// two, under twice their length; shorter ones into their length.
	for _, n := range []int{100, 4 << 10, 4<<10 + 1, 8000, 64 << 10, 64<<10 + 1, 195_000, 1 << 20} {
		FreeMessage(bytes.Repeat([]byte{0xee}, 256<<10))
		a, b := bytes.Repeat([]byte{1}, n/2), bytes.Repeat([]byte{2}, n-n/2)
		r.AddEdgeFrame(true, a, nil)
		msg, done, err := r.AddEdgeFrame(false, b, nil)
		if err != nil || !done || !bytes.Equal(msg, append(append([]byte(nil), a...), b...)) {
			t.Fatalf("join of %d bytes: %v %v", n, done, err)
		}
		pow2 := cap(msg)&(cap(msg)-1) == 0
		if n <= 4<<10 && cap(msg) != n || n > 4<<10 && (!pow2 || cap(msg) >= 2*n && n < MaxMessage) {
			t.Fatalf("join of %d bytes in a buffer of %d", n, cap(msg))
		}
	}
	// Only a whole large frame is taken back.
	FreeLarge(make([]byte, ClassMedium))
	if g := NewLarge(); len(g) != ClassLarge || cap(g) != ClassLarge {
		t.Fatalf("NewLarge gave %d/%d bytes", len(g), cap(g))
	}
}
