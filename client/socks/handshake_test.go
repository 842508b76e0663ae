package socks

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// pipe is an in-memory io.ReadWriter: reads from in, records writes.
type pipe struct {
	in  *bytes.Reader
	out bytes.Buffer
}

func (p *pipe) Read(b []byte) (int, error)  { return p.in.Read(b) }
func (p *pipe) Write(b []byte) (int, error) { return p.out.Write(b) }

type socksVector struct {
	Name     string  `json:"name"`
	Input    string  `json:"input"`
	Output   string  `json:"output"`
	Result   string  `json:"result"`
	Reply    byte    `json:"reply"`
	Model    string  `json:"model"`
	Username *string `json:"username"`
	Password *string `json:"password"`
}

func loadVectors(tb testing.TB) []socksVector {
	tb.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "spec", "vectors", "clientapi", "socks5.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var v struct{ Cases []socksVector }
	if err := json.Unmarshal(raw, &v); err != nil {
		tb.Fatal(err)
	}
	if len(v.Cases) < 10 {
		tb.Fatalf("only %d vectors", len(v.Cases))
	}
	return v.Cases
}

// TestHandshakeVectors runs spec/vectors/clientapi/socks5.json.
func TestHandshakeVectors(t *testing.T) {
	for _, c := range loadVectors(t) {
		t.Run(c.Name, func(t *testing.T) {
			in, err := hex.DecodeString(c.Input)
			if err != nil {
				t.Fatal(err)
			}
			p := &pipe{in: bytes.NewReader(in)}
			target, auth, err := serverHandshake(p)
			if got := hex.EncodeToString(p.out.Bytes()); got != c.Output {
				t.Fatalf("server wrote %s, want %s", got, c.Output)
			}
			var refused *RefusedError
			switch c.Result {
			case "ok":
				if err != nil {
					t.Fatalf("handshake failed: %v", err)
				}
				if target.Model != c.Model || !strings.HasSuffix(target.Host, ".unfed") {
					t.Fatalf("target %+v, want model %q", target, c.Model)
				}
				if auth.UserPass != (c.Username != nil) {
					t.Fatalf("auth %+v", auth)
				}
				if c.Username != nil && (auth.Username != *c.Username || auth.Password != *c.Password) {
					t.Fatalf("credentials %q/%q", auth.Username, auth.Password)
				}
			case "refused":
				if !errors.As(err, &refused) || refused.Code != c.Reply {
					t.Fatalf("err = %v, want refusal 0x%02x", err, c.Reply)
				}
			case "error":
				if err == nil || errors.As(err, &refused) {
					t.Fatalf("err = %v, want a plain handshake error", err)
				}
			default:
				t.Fatalf("bad vector result %q", c.Result)
			}
		})
	}
}

func TestHandshakeReadsExactly(t *testing.T) {
	in := append([]byte{5, 1, 0, 5, 1, 0, 3, 7}, "m.unfed\x00\x50GET / HTTP/1.1\r\n"...)
	p := &pipe{in: bytes.NewReader(in)}
	if _, _, err := serverHandshake(p); err != nil {
		t.Fatal(err)
	}
	rest := make([]byte, 64)
	n, _ := p.in.Read(rest)
	if string(rest[:n]) != "GET / HTTP/1.1\r\n" {
		t.Fatalf("handshake consumed tunnelled bytes; left %q", rest[:n])
	}
}

func TestIsolationEncoding(t *testing.T) {
	a := Auth{UserPass: true, Username: "a:1", Password: "b"}
	b := Auth{UserPass: true, Username: "a", Password: "1:b"}
	if a.isolation() == b.isolation() {
		t.Fatal("different credentials encode alike")
	}
	if (Auth{}).isolation() == (Auth{UserPass: true}).isolation() {
		t.Fatal("no auth and empty credentials encode alike")
	}
}

func FuzzSOCKSHandshake(f *testing.F) {
	for _, c := range loadVectors(f) {
		in, _ := hex.DecodeString(c.Input)
		f.Add(in)
	}
	f.Add([]byte{5, 255})
	f.Add([]byte{5, 2, 2, 0, 1, 255})
	f.Fuzz(func(t *testing.T, in []byte) {
		p := &pipe{in: bytes.NewReader(in)}
		target, _, err := serverHandshake(p)
		out := p.out.Bytes()
		if len(out) > 2+2+10 {
			t.Fatalf("server wrote %d bytes", len(out))
		}
		if len(out) > 0 && out[0] != version5 {
			t.Fatalf("reply %x", out)
		}
		if err == nil {
			if !strings.HasSuffix(target.Host, ".unfed") || target.Model == "" || len(out) < 12 || out[len(out)-9] != ReplySucceeded {
				t.Fatalf("accepted %+v with reply %x", target, out)
			}
		}
	})
}

func BenchmarkSOCKSHandshake(b *testing.B) {
	in := append([]byte{5, 2, 0, 2, 1, 5}, "alice\x02pw\x05\x01\x00\x03\x0dstories.unfed\x00\x50"...)
	p := &pipe{}
	for b.Loop() {
		p.in = bytes.NewReader(in)
		p.out.Reset()
		if _, _, err := serverHandshake(p); err != nil {
			b.Fatal(err)
		}
	}
}
