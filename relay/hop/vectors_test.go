package hop

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

// The vectors of spec/03-compute.md §10. `go test -run TestVectors -update`
// rewrites them from sampleMsgs and sampleEdges; the normal run checks that
// every vector decodes to its fields and re-encodes to its bytes.

var update = flag.Bool("update", false, "rewrite spec/vectors/compute")

const vectorFile = "../../spec/vectors/compute/messages.json"

type vectorFileT struct {
	Comment   string           `json:"comment"`
	Messages  []msgVector      `json:"messages"`
	Edge      []msgVector      `json:"edge"`
	Envelopes []envelopeVector `json:"envelopes"`
}

type msgVector struct {
	Type   string          `json:"type"`
	Fields json.RawMessage `json:"fields"`
	Hex    string          `json:"hex"`
}

type envelopeVector struct {
	Secret     string   `json:"secret"`
	Channel    Channel  `json:"channel"`
	Key        string   `json:"key"`
	Plaintexts []string `json:"plaintexts"`
	Envelopes  []string `json:"envelopes"`
}

func makeVectors(t *testing.T) vectorFileT {
	v := vectorFileT{Comment: "spec/03-compute.md §10: fields are the Go structs of relay/hop as JSON (edge secrets as byte arrays, float32 as numbers); hex is the encoding"}
	for _, m := range sampleMsgs() {
		f, _ := json.Marshal(m)
		v.Messages = append(v.Messages, msgVector{m.Type().String(), f, hex.EncodeToString(m.Append(nil))})
	}
	for _, m := range sampleEdges() {
		f, _ := json.Marshal(m)
		v.Edge = append(v.Edge, msgVector{m.EdgeType().String(), f, hex.EncodeToString(m.Append(nil))})
	}
	for _, ch := range []Channel{ChanData, ChanPairBA, ChannelDeal} {
		s := secret(0x40)
		key, err := edgeKey(s, ch)
		if err != nil {
			t.Fatal(err)
		}
		ev := envelopeVector{Secret: hex.EncodeToString(s[:]), Channel: ch, Key: hex.EncodeToString(key)}
		seal, _ := NewSealer(s, ch)
		pts := [][]byte{sampleEdges()[0].Append(nil), {byte(EdgeMPCPeer), 0xaa}}
		if ch == ChannelDeal {
			pts = [][]byte{(&MPCPrep{More: true, Body: []byte{4, 4, 0}}).Append(nil), (&MPCPrep{Body: []byte{0xaa}}).Append(nil)}
		}
		for _, pt := range pts {
			env, _ := seal.Seal(nil, pt)
			ev.Plaintexts = append(ev.Plaintexts, hex.EncodeToString(pt))
			ev.Envelopes = append(ev.Envelopes, hex.EncodeToString(env))
		}
		v.Envelopes = append(v.Envelopes, ev)
	}
	return v
}

func TestVectors(t *testing.T) {
	if *update {
		b, _ := json.MarshalIndent(makeVectors(t), "", "  ")
		if err := os.MkdirAll(filepath.Dir(vectorFile), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(vectorFile, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(vectorFile)
	if err != nil {
		t.Fatal(err)
	}
	var v vectorFileT
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Messages) == 0 || len(v.Edge) == 0 || len(v.Envelopes) == 0 {
		t.Fatal("empty vector file")
	}
	check := func(name string, b []byte, decoded any, enc []byte, want json.RawMessage) {
		t.Helper()
		got, _ := json.Marshal(decoded)
		var a, w any
		json.Unmarshal(got, &a)
		json.Unmarshal(want, &w)
		ga, _ := json.Marshal(a)
		gw, _ := json.Marshal(w)
		if !bytes.Equal(ga, gw) {
			t.Errorf("%s: decoded %s, vector says %s", name, ga, gw)
		}
		if !bytes.Equal(enc, b) {
			t.Errorf("%s: re-encoded %x, vector %x", name, enc, b)
		}
	}
	for _, mv := range v.Messages {
		b, _ := hex.DecodeString(mv.Hex)
		m, err := Decode(b)
		if err != nil {
			t.Fatalf("%s: %v", mv.Type, err)
		}
		if m.Type().String() != mv.Type {
			t.Fatalf("%s decoded as %v", mv.Type, m.Type())
		}
		check(mv.Type, b, m, m.Append(nil), mv.Fields)
	}
	for _, mv := range v.Edge {
		b, _ := hex.DecodeString(mv.Hex)
		m, err := DecodeEdge(b)
		if err != nil {
			t.Fatalf("%s: %v", mv.Type, err)
		}
		check(mv.Type, b, m, m.Append(nil), mv.Fields)
	}
	for _, ev := range v.Envelopes {
		var s EdgeSecret
		sb, _ := hex.DecodeString(ev.Secret)
		copy(s[:], sb)
		key, _ := edgeKey(&s, ev.Channel)
		if hex.EncodeToString(key) != ev.Key {
			t.Errorf("channel %d: key %x, vector %s", ev.Channel, key, ev.Key)
		}
		seal, _ := NewSealer(&s, ev.Channel)
		open, _ := NewOpener(&s, ev.Channel)
		for i, pth := range ev.Plaintexts {
			pt, _ := hex.DecodeString(pth)
			env, _ := seal.Seal(nil, pt)
			if hex.EncodeToString(env) != ev.Envelopes[i] {
				t.Errorf("channel %d envelope %d: %x, vector %s", ev.Channel, i, env, ev.Envelopes[i])
			}
			want, _ := hex.DecodeString(ev.Envelopes[i])
			got, err := open.Open(want)
			if err != nil || !bytes.Equal(got, pt) {
				t.Errorf("channel %d envelope %d does not open: %v", ev.Channel, i, err)
			}
		}
	}
}
