package hop

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

func secret(b byte) *EdgeSecret {
	var s EdgeSecret
	for i := range s {
		s[i] = b + byte(i)
	}
	return &s
}

func sampleMsgs() []Msg {
	return []Msg{
		&Setup{Role: RoleCompute, Input: InputTokens, DType: F32, First: 0, Last: 3, MaxContext: 512, TopK: 40,
			ModelID: "stories260K", Out: secret(1), OutHops: 1},
		&Setup{Role: RoleCompute, Input: InputActivations, DType: F16, First: 3, Last: 5, ModelID: "m",
			In: secret(2)},
		&Setup{Role: RoleDealer, Input: InputNone, DType: F32, First: 0, Last: 2, MaxContext: 256, ModelID: "m",
			Deal: secret(3), DealB: secret(4)},
		&Setup{Role: RolePartyA, Input: InputShares, DType: F32, First: 0, Last: 2, NextLast: 5, ModelID: "m",
			Pair: secret(5), Deal: secret(3), Out: secret(6), OutB: secret(7), OutHops: 3},
		&Setup{Role: RolePartyB, Input: InputShares, DType: F32, First: 2, Last: 5, ModelID: "m",
			Pair: secret(8), DealB: secret(9), In: secret(10), InB: secret(11)},
		&Setup{Role: RoleCompute, Input: InputHidden, DType: F32, First: 0, Last: 5, ModelID: "m", HiddenOut: true},
		&Tokens{Start: 7, IDs: []int{1, 403, 0, 511}},
		&BundleGet{Offset: 1 << 20, Length: MaxBundleRead, ModelID: "stories260K"},
		&BundleData{Total: 10, Offset: 4, Data: []byte{1, 2, 3}},
		&Hidden{Activations: Activations{Start: 3, N: 2, Dim: 2, Final: true, Data: []float32{1, -0.5, 2, 0}}},
		&Hidden{Out: true, Activations: Activations{Start: 4, N: 1, Dim: 2, Final: true, Data: []float32{0.25, -3}}},
		&Truncate{Pos: 12},
		&Teardown{},
		&Deal{Step: 3, Rows: 2},
		&MPCInput{Final: true, Body: []byte{4, 1, 0, 16, 9, 8, 7}},
		&MPCInput{Body: []byte{1}},
		&MPCOutput{Final: true, Body: []byte{4, 7, 1, 16, 9}},
		&SetupOK{First: 2, Last: 5, Dim: 64, Vocab: 512, MaxContext: 2048, ModelID: "stories260K"},
		&Logits{Pos: 4, Dense: []float32{1.5, -2, float32(math.Inf(1)), 0}},
		&Logits{Pos: 9, TopK: []Entry{{ID: 3, Value: 2.5}, {ID: 1, Value: -1}}},
		&Error{Code: CodeContextTooLong, Reason: "needs 600 positions, limit 512"},
		&Error{Code: CodeInternal},
	}
}

func TestMsgRoundTrip(t *testing.T) {
	for _, m := range sampleMsgs() {
		b := m.Append(nil)
		if MsgType(b[0]) != m.Type() {
			t.Fatalf("%v: type byte %#x", m.Type(), b[0])
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("%v: %v", m.Type(), err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("%v: round trip\n got %+v\nwant %+v", m.Type(), got, m)
		}
		if again := got.Append(nil); !bytes.Equal(again, b) {
			t.Fatalf("%v: re-encoding differs", m.Type())
		}
	}
}

func TestDecodeDoesNotAlias(t *testing.T) {
	for _, m := range sampleMsgs() {
		b := m.Append(nil)
		got, err := Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		for i := range b {
			b[i] ^= 0xff
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("%v: decoded message changed with its input", m.Type())
		}
	}
}

func TestSetupExtensionsIgnored(t *testing.T) {
	m := sampleMsgs()[0].(*Setup)
	b := append(m.Append(nil), 0xde, 0xad)
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("got %+v", got)
	}
}

func TestDecodeRejects(t *testing.T) {
	setup := func(f func(*Setup)) []byte {
		m := &Setup{Role: RoleCompute, Input: InputActivations, First: 1, Last: 2, ModelID: "m", In: secret(1)}
		f(m)
		return m.Append(nil)
	}
	cases := map[string][]byte{
		"empty":             nil,
		"unknown type":      {0x42},
		"setup short":       setup(func(*Setup) {})[:10],
		"setup role":        setup(func(m *Setup) { m.Role = 4 }),
		"setup input":       setup(func(m *Setup) { m.Input = 5 }),
		"setup hidden topk": setup(func(m *Setup) { m.HiddenOut, m.TopK = true, 1 }),
		"final hidden rows": (&Hidden{Out: true, Activations: Activations{N: 2, Dim: 1, Data: []float32{1, 2}}}).Append(nil),
		"hidden cut":        (&Hidden{Activations: Activations{N: 2, Dim: 1, Data: []float32{1, 2}}}).Append(nil)[:20],
		"bundle get zero":   (&BundleGet{Length: 0, ModelID: "m"}).Append(nil),
		"bundle get big":    (&BundleGet{Length: MaxBundleRead + 1, ModelID: "m"}).Append(nil),
		"bundle get id":     (&BundleGet{Length: 1, ModelID: "m"}).Append(nil)[:14],
		"bundle data past":  (&BundleData{Total: 3, Offset: 2, Data: []byte{1, 2}}).Append(nil),
		"hidden dtype":      (&Hidden{Activations: Activations{N: 1, Dim: 1, DType: 7, Data: []float32{1}}}).Append(nil),
		"setup next":        setup(func(m *Setup) { m.NextLast = 2 }),
		"setup dtype":       setup(func(m *Setup) { m.DType = 2 }),
		"setup range":       setup(func(m *Setup) { m.First, m.Last = 2, 2 }),
		"setup no model":    setup(func(m *Setup) { m.ModelID = "" }),
		"setup long model":  setup(func(m *Setup) { m.ModelID = strings.Repeat("x", MaxModelID+1) }),
		"setup out no hops": setup(func(m *Setup) { m.Out = secret(3) }),
		"setup hops no out": setup(func(m *Setup) { m.OutHops = 1 }),
		"setup far hops":    setup(func(m *Setup) { m.Out, m.OutHops = secret(3), 17 }),
		"setup top-k":       setup(func(m *Setup) { m.TopK = MaxTopK + 1 }),
		"setup context":     setup(func(m *Setup) { m.MaxContext = MaxContextField + 1 }),
		"setup cut key":     setup(func(*Setup) {})[:setupFixed+1+10],
		"setup dup key": func() []byte {
			b := setup(func(*Setup) {})
			b[len(b)-34] = 2 // two keys claimed
			return append(b, b[len(b)-33:]...)
		}(),
		"setup bad slot": func() []byte {
			b := setup(func(*Setup) {})
			b[len(b)-33] = 9
			return b
		}(),
		"tokens none":       (&Tokens{Start: 0}).Append(nil),
		"tokens cut":        (&Tokens{IDs: []int{1, 2}}).Append(nil)[:12],
		"tokens long":       append((&Tokens{IDs: []int{1}}).Append(nil), 0),
		"tokens past ctx":   (&Tokens{Start: MaxContextField, IDs: []int{1}}).Append(nil),
		"deal short":        {byte(TypeDeal), 0, 0, 0, 0, 0, 0, 0},
		"deal long":         append((&Deal{Rows: 1}).Append(nil), 0),
		"deal count 0":      (&Deal{Step: 1, Rows: 0}).Append(nil),
		"deal count 1025":   (&Deal{Step: 1, Rows: MaxDealRows + 1}).Append(nil),
		"deal past ctx":     (&Deal{Step: MaxContextField, Rows: 1}).Append(nil),
		"mpc input empty":   {byte(TypeMPCInput), 1},
		"mpc input no flag": {byte(TypeMPCInput)},
		"mpc output empty":  {byte(TypeMPCOutput), 1},
		"mpc step (gone)":   {0x03, 1, 2},
		"truncate short":    {byte(TypeTruncate), 0, 0},
		"teardown body":     {byte(TypeTeardown), 0},
		"setup ok id":       (&SetupOK{First: 0, Last: 1, Dim: 1, Vocab: 1}).Append(nil),
		"setup ok range":    (&SetupOK{First: 1, Last: 1, Dim: 1, Vocab: 1, ModelID: "m"}).Append(nil),
		"logits mode":       {byte(TypeLogits), 0, 0, 0, 0, 2, 0, 0, 0, 0},
		"logits empty":      (&Logits{Dense: []float32{}}).Append(nil),
		"logits cut":        (&Logits{Dense: []float32{1, 2}}).Append(nil)[:15],
		"logits topk cut":   (&Logits{TopK: []Entry{{1, 1}}}).Append(nil)[:15],
		"error cut":         {byte(TypeError), 1, 5, 'a'},
		"error unprintable": {byte(TypeError), 1, 1, '\n'},
	}
	for name, b := range cases {
		if _, err := Decode(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
	for _, typ := range []byte{0x42, 0x03} {
		if _, err := Decode([]byte{typ, 1, 2}); !errors.Is(err, ErrUnknownType) {
			t.Errorf("type %#x: %v", typ, err)
		}
	}
	b := setup(func(*Setup) {})
	b[1] = 1
	if _, err := Decode(b); !errors.Is(err, ErrVersion) {
		t.Errorf("version 1: %v", err)
	}
}

func TestErrorMessage(t *testing.T) {
	e := &Error{Code: CodeWrongModel, Reason: strings.Repeat("é", 200)}
	got, err := Decode(e.Append(nil))
	if err != nil {
		t.Fatal(err)
	}
	r := got.(*Error)
	if len(r.Reason) != MaxReason || strings.Trim(r.Reason, "?") != "" {
		t.Fatalf("reason not sanitised: %q", r.Reason)
	}
	var target error = r
	if !errors.Is(target, &Error{Code: CodeWrongModel}) || errors.Is(target, &Error{Code: CodeCapacity}) {
		t.Fatal("errors.Is by code does not work")
	}
	if CodeContextTooLong.Fatal() || !CodeBadMessage.Fatal() || Code(200).String() != "code(200)" {
		t.Fatal("code helpers")
	}
}

func TestTopK(t *testing.T) {
	nan := float32(math.NaN())
	logits := []float32{1, 3, nan, 3, -1, 2, 3, float32(math.Inf(-1))}
	got := TopK(logits, 4)
	want := []Entry{{1, 3}, {3, 3}, {6, 3}, {5, 2}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("TopK = %v, want %v", got, want)
	}
	all := TopK(logits, 100)
	if len(all) != len(logits) || all[len(all)-1].ID != 2 || all[len(all)-2].ID != 7 {
		t.Fatalf("full TopK = %v", all)
	}
	if TopK(logits, 0) != nil {
		t.Fatal("TopK(0) not empty")
	}
	// Against a brute-force selection on a vector with many ties.
	v := make([]float32, 1000)
	for i := range v {
		v[i] = float32((i * 7919) % 37)
	}
	got = TopK(v, 50)
	for i, e := range got {
		for j := range v {
			if better(Entry{j, v[j]}, e) && !contains(got[:i], j) {
				t.Fatalf("entry %d (%v) outranked by id %d", i, e, j)
			}
		}
	}
}

func contains(es []Entry, id int) bool {
	for _, e := range es {
		if e.ID == id {
			return true
		}
	}
	return false
}

// TestPrepFragments checks MPC_PREP fragmentation: SplitPrep's pieces
// round-trip through the encoding, join to the original PREP, and carry MORE
// on all but the last; the default cut is MaxPrepFragment and fits an edge
// message.
func TestPrepFragments(t *testing.T) {
	body := make([]byte, 10_000)
	for i := range body {
		body[i] = byte(i * 7)
	}
	for _, size := range []int{1, 999, 5000, 10_000, 0} {
		parts := SplitPrep(body, size)
		var joined []byte
		for i, p := range parts {
			m, err := DecodeEdge(p.Append(nil))
			if err != nil {
				t.Fatalf("size %d part %d: %v", size, i, err)
			}
			pp := m.(*MPCPrep)
			if last := i == len(parts)-1; pp.More == last {
				t.Fatalf("size %d part %d of %d: more=%v", size, i, len(parts), pp.More)
			}
			if size > 0 && len(pp.Body) > size {
				t.Fatalf("size %d: fragment of %d bytes", size, len(pp.Body))
			}
			joined = append(joined, pp.Body...)
		}
		if !bytes.Equal(joined, body) {
			t.Fatalf("size %d: fragments do not join to the PREP", size)
		}
	}
	parts := SplitPrep(make([]byte, 3*MaxPrepFragment+1), 0)
	if len(parts) != 4 {
		t.Fatalf("default fragment size: %d parts, want 4", len(parts))
	}
	if n := len(parts[0].Append(nil)); n > MaxEdgePlain {
		t.Fatalf("a full fragment is a %d-byte edge message, over %d", n, MaxEdgePlain)
	}
}
