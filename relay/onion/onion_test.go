package onion

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/unfed/unfed/relay/keys"
)

var update = flag.Bool("update", false, "rewrite spec/vectors/circuit from the code")

const vectorDir = "../../spec/vectors/circuit"

// detRand is a deterministic byte stream for vectors: SHA-256 in counter mode
// over a label.
type detRand struct {
	label string
	ctr   int
	buf   []byte
}

func (d *detRand) Read(p []byte) (int, error) {
	for len(d.buf) < len(p) {
		s := sha256.Sum256([]byte(d.label + string(rune('0'+d.ctr))))
		d.buf = append(d.buf, s[:]...)
		d.ctr++
	}
	n := copy(p, d.buf)
	d.buf = d.buf[n:]
	return n, nil
}

func readN(t testing.TB, r *detRand, n int) []byte {
	b := make([]byte, n)
	r.Read(b)
	return b
}

type hexBytes []byte

func (h hexBytes) MarshalJSON() ([]byte, error) { return json.Marshal(hex.EncodeToString(h)) }
func (h *hexBytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	d, err := hex.DecodeString(s)
	*h = d
	return err
}

type handshakeVector struct {
	Comment      string   `json:"comment"`
	Type         Type     `json:"type"`
	IdentitySeed hexBytes `json:"identity_seed"`
	OnionSecret  hexBytes `json:"onion_secret"`
	ClientRandom hexBytes `json:"client_random"`
	RelayRandom  hexBytes `json:"relay_random"`
	Create       hexBytes `json:"create"`
	Created      hexBytes `json:"created"`
	ForwardKey   hexBytes `json:"forward_key"`
	BackwardKey  hexBytes `json:"backward_key"`
}

func makeVector(t *testing.T, typ Type) handshakeVector {
	r := &detRand{label: "unfed circuit vector " + string(rune('0'+typ))}
	v := handshakeVector{Type: typ,
		IdentitySeed: readN(t, r, 32), OnionSecret: readN(t, r, keys.OnionSecretLen),
		ClientRandom: readN(t, r, 32), RelayRandom: readN(t, r, 32)}
	if typ == NtorXWing {
		v.ClientRandom = append(v.ClientRandom, readN(t, r, 64)...)
		v.Comment = "hybrid: client_random = x (32) | X-Wing encapsulation seed (64)"
	} else {
		v.Comment = "classical: client_random = x (32)"
	}
	return v
}

func runVector(t *testing.T, v handshakeVector) (create, created []byte, ck, sk *Keys) {
	t.Helper()
	id, err := keys.IdentityFromSeed(v.IdentitySeed)
	if err != nil {
		t.Fatal(err)
	}
	ok, err := keys.OnionKeyFromSecret(v.OnionSecret, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	h, create, err := NewClient(v.Type, RelayInfo{Identity: id.Public, OnionKey: ok.Public, XWingKey: ok.XWingPublic}, bytes.NewReader(v.ClientRandom))
	if err != nil {
		t.Fatal(err)
	}
	created, sk, err = Server(v.Type, create, ServerKeys{Identity: id.Public, Onion: []*keys.OnionKey{ok}}, bytes.NewReader(v.RelayRandom))
	if err != nil {
		t.Fatal(err)
	}
	ck, err = h.Finish(created)
	if err != nil {
		t.Fatal(err)
	}
	return create, created, ck, sk
}

func TestHandshakeVectors(t *testing.T) {
	path := filepath.Join(vectorDir, "handshake.json")
	if *update {
		var vs []handshakeVector
		for _, typ := range []Type{Ntor, NtorXWing} {
			v := makeVector(t, typ)
			create, created, k, _ := runVector(t, v)
			v.Create, v.Created, v.ForwardKey, v.BackwardKey = create, created, k.Forward[:], k.Backward[:]
			vs = append(vs, v)
		}
		b, _ := json.MarshalIndent(vs, "", "  ")
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading vectors: %v", err)
	}
	var vs []handshakeVector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	seen := map[Type]bool{}
	for _, v := range vs {
		seen[v.Type] = true
		create, created, ck, sk := runVector(t, v)
		if !bytes.Equal(create, v.Create) {
			t.Errorf("type %d: CREATE data differs from the vector", v.Type)
		}
		if !bytes.Equal(created, v.Created) {
			t.Errorf("type %d: CREATED data differs from the vector", v.Type)
		}
		if !bytes.Equal(ck.Forward[:], v.ForwardKey) || !bytes.Equal(ck.Backward[:], v.BackwardKey) {
			t.Errorf("type %d: client keys differ from the vector", v.Type)
		}
		if *ck != *sk {
			t.Errorf("type %d: client and relay keys differ", v.Type)
		}
	}
	if !seen[Ntor] || !seen[NtorXWing] {
		t.Fatalf("vectors must cover both handshake types, have %v", seen)
	}
}

func TestHandshakeFailures(t *testing.T) {
	v := makeVector(t, NtorXWing)
	id, _ := keys.IdentityFromSeed(v.IdentitySeed)
	ok, _ := keys.OnionKeyFromSecret(v.OnionSecret, time.Unix(0, 0))
	old, _ := keys.NewOnionKey(nil, time.Unix(0, 0))
	other, _ := keys.NewIdentity(nil)
	for _, typ := range []Type{Ntor, NtorXWing} {
		info := RelayInfo{Identity: id.Public, OnionKey: ok.Public, XWingKey: ok.XWingPublic}
		h, create, err := NewClient(typ, info, nil)
		if err != nil {
			t.Fatal(err)
		}
		// The previous onion key is still accepted.
		if _, _, err := Server(typ, create, ServerKeys{Identity: id.Public, Onion: []*keys.OnionKey{old, ok}}, nil); err != nil {
			t.Errorf("type %d: previous onion key refused: %v", typ, err)
		}
		// Only the old key: refused.
		if _, _, err := Server(typ, create, ServerKeys{Identity: id.Public, Onion: []*keys.OnionKey{old}}, nil); !errors.Is(err, ErrHandshake) {
			t.Errorf("type %d: unknown onion key: %v", typ, err)
		}
		// Another relay's identity: refused.
		if _, _, err := Server(typ, create, ServerKeys{Identity: other.Public, Onion: []*keys.OnionKey{ok}}, nil); !errors.Is(err, ErrHandshake) {
			t.Errorf("type %d: wrong identity: %v", typ, err)
		}
		created, _, err := Server(typ, create, ServerKeys{Identity: id.Public, Onion: []*keys.OnionKey{ok}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		created[40] ^= 1
		if _, err := h.Finish(created); !errors.Is(err, ErrHandshake) {
			t.Errorf("type %d: tampered AUTH accepted: %v", typ, err)
		}
		// Truncated and low-order inputs never panic.
		if _, _, err := Server(typ, create[:len(create)-1], ServerKeys{Identity: id.Public, Onion: []*keys.OnionKey{ok}}, nil); err == nil {
			t.Errorf("type %d: short CREATE accepted", typ)
		}
		zero := append([]byte(nil), create...)
		clear(zero[keys.FingerprintLen+32 : keys.FingerprintLen+64])
		if _, _, err := Server(typ, zero, ServerKeys{Identity: id.Public, Onion: []*keys.OnionKey{ok}}, nil); !errors.Is(err, ErrHandshake) {
			t.Errorf("type %d: low-order X accepted: %v", typ, err)
		}
	}
	if _, _, err := Server(Type(9), nil, ServerKeys{}, nil); !errors.Is(err, ErrUnknownType) {
		t.Errorf("unknown type: %v", err)
	}
	if _, _, err := NewClient(NtorXWing, RelayInfo{Identity: id.Public, OnionKey: ok.Public, XWingKey: []byte{1}}, nil); err == nil {
		t.Error("short X-Wing key accepted")
	}
}

type layerVector struct {
	Key   hexBytes `json:"key"`
	Steps []struct {
		Flag Flag     `json:"flag"`
		Body hexBytes `json:"body"`
		Out  hexBytes `json:"out"`
	} `json:"steps"`
}

func TestLayerVectors(t *testing.T) {
	path := filepath.Join(vectorDir, "layer.json")
	if *update {
		r := &detRand{label: "unfed layer vector"}
		var v layerVector
		v.Key = readN(t, r, 32)
		l, _ := NewLayer([32]byte(v.Key))
		for i, n := range []int{0, 5, 100} {
			body := readN(t, r, n)
			buf := append([]byte{0}, body...)
			out, _ := l.Seal(buf, Flag(1+i%4))
			v.Steps = append(v.Steps, struct {
				Flag Flag     `json:"flag"`
				Body hexBytes `json:"body"`
				Out  hexBytes `json:"out"`
			}{Flag(1 + i%4), body, append([]byte(nil), out...)})
		}
		b, _ := json.MarshalIndent(v, "", "  ")
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v layerVector
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	seal, _ := NewLayer([32]byte(v.Key))
	open, _ := NewLayer([32]byte(v.Key))
	for i, s := range v.Steps {
		out, err := seal.Seal(append([]byte{0}, s.Body...), s.Flag)
		if err != nil || !bytes.Equal(out, s.Out) {
			t.Fatalf("step %d: seal differs from the vector", i)
		}
		f, body, err := open.Open(append([]byte(nil), s.Out...))
		if err != nil || f != s.Flag || !bytes.Equal(body, s.Body) {
			t.Fatalf("step %d: open: %v", i, err)
		}
	}
	// Opening the first step again with a fresh layer at counter 1 fails:
	// the nonce is the position in the stream.
	l, _ := NewLayer([32]byte(v.Key))
	if _, _, err := l.Open(append([]byte(nil), v.Steps[1].Out...)); !errors.Is(err, ErrAuth) {
		t.Fatalf("out-of-order layer opened: %v", err)
	}
}

func FuzzServerHandshake(f *testing.F) {
	id, _ := keys.IdentityFromSeed(make([]byte, 32))
	ok, _ := keys.OnionKeyFromSecret(make([]byte, keys.OnionSecretLen), time.Unix(0, 0))
	for _, typ := range []Type{Ntor, NtorXWing} {
		_, create, _ := NewClient(typ, RelayInfo{Identity: id.Public, OnionKey: ok.Public, XWingKey: ok.XWingPublic}, nil)
		f.Add(uint16(typ), create)
	}
	f.Add(uint16(7), []byte{1, 2, 3})
	sk := ServerKeys{Identity: id.Public, Onion: []*keys.OnionKey{ok}}
	f.Fuzz(func(t *testing.T, typ uint16, create []byte) {
		Server(Type(typ), create, sk, nil)
	})
}

func benchLayer(b *testing.B, size int, open bool) {
	var key [32]byte
	seal, _ := NewLayer(key)
	opener, _ := NewLayer(key)
	buf := make([]byte, size-16, size)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out, _ := seal.Seal(buf[:size-16], Pass)
		if open {
			if _, _, err := opener.Open(out); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkLayerSeal measures one hop's layer work on a full largest-class
// relay cell body (cell.ClassLarge - cell.HeaderLen = 65017 bytes).
func BenchmarkLayerSeal64K(b *testing.B) { benchLayer(b, 65017, false) }

// BenchmarkLayerSealOpen64K is one seal plus one open: the client's and the
// hop's work per layer.
func BenchmarkLayerSealOpen64K(b *testing.B) { benchLayer(b, 65017, true) }
func BenchmarkLayerSeal4K(b *testing.B)      { benchLayer(b, 4089, false) }
func BenchmarkLayerSeal512(b *testing.B)     { benchLayer(b, 505, false) }

func BenchmarkHandshake(b *testing.B) {
	id, _ := keys.NewIdentity(nil)
	ok, _ := keys.NewOnionKey(nil, time.Now())
	info := RelayInfo{Identity: id.Public, OnionKey: ok.Public, XWingKey: ok.XWingPublic}
	sk := ServerKeys{Identity: id.Public, Onion: []*keys.OnionKey{ok}}
	for _, typ := range []Type{Ntor, NtorXWing} {
		name := map[Type]string{Ntor: "classical", NtorXWing: "hybrid"}[typ]
		b.Run(name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				h, c, _ := NewClient(typ, info, nil)
				d, _, err := Server(typ, c, sk, nil)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := h.Finish(d); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
