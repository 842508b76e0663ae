package link

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/flynn/noise"
)

func FuzzHandshakePayload(f *testing.F) {
	f.Add((&payload{Versions: []uint16{1, 2}}).encode())
	f.Add((&payload{Versions: []uint16{1}, Chosen: 1, HasChosen: true, Cert: make([]byte, 137)}).encode())
	f.Add([]byte{itemPadding, 0, 2, 9, 9, itemVersions, 0, 2, 0, 1})
	f.Add([]byte{itemVersions, 0, 3, 0, 1, 2})
	f.Add([]byte{itemChosen, 0xff, 0xff})
	f.Add([]byte{0x42, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parsePayload(b)
		if err != nil {
			if !errors.Is(err, ErrBadPayload) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		// What parses re-encodes to something that parses the same.
		q, err := parsePayload(p.encode())
		if err != nil {
			t.Fatalf("re-encoded payload does not parse: %v", err)
		}
		if !equalPayload(p, q) {
			t.Fatalf("round trip changed %+v to %+v", p, q)
		}
	})
}

func equalPayload(a, b *payload) bool {
	if a.Chosen != b.Chosen || a.HasChosen != b.HasChosen || !bytes.Equal(a.Cert, b.Cert) || len(a.Versions) != len(b.Versions) {
		return false
	}
	for i := range a.Versions {
		if a.Versions[i] != b.Versions[i] {
			return false
		}
	}
	return true
}

// readerConn is a net.Conn that reads from a byte stream and discards writes.
type readerConn struct {
	io.Reader
	closed bool
}

func (c *readerConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *readerConn) Close() error                     { c.closed = true; return nil }
func (c *readerConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *readerConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *readerConn) SetDeadline(time.Time) error      { return nil }
func (c *readerConn) SetReadDeadline(time.Time) error  { return nil }
func (c *readerConn) SetWriteDeadline(time.Time) error { return nil }

var fuzzKey = [32]byte{1, 2, 3}

// sealFrames encodes frames of (type, body) as a sender under fuzzKey would.
func sealFrames(frames ...[]byte) []byte {
	cs := noise.UnsafeNewCipherState(cipherSuite, fuzzKey, 0)
	var out []byte
	for _, f := range frames {
		ct, _ := cs.Encrypt(nil, nil, f)
		out = binary.BigEndian.AppendUint16(out, uint16(len(ct)))
		out = append(out, ct...)
		if len(f) == 1 && f[0] == frameRekey {
			cs.Rekey()
		}
	}
	return out
}

func FuzzFrameDecoder(f *testing.F) {
	f.Add(sealFrames([]byte{frameData, 'h', 'i'}, []byte{frameKeepalive}, []byte{frameRekey}, []byte{frameData, 'x'}))
	f.Add(sealFrames([]byte{frameData}))
	f.Add(sealFrames([]byte{0x77, 1}))
	f.Add(sealFrames([]byte{frameRekey, 1}))
	f.Add([]byte{0, 3, 1, 2, 3})
	f.Add([]byte{0xff, 0xff, 0})
	f.Fuzz(func(t *testing.T, wire []byte) {
		rc := &readerConn{Reader: bytes.NewReader(wire)}
		send := noise.UnsafeNewCipherState(cipherSuite, [32]byte{9}, 0)
		recv := noise.UnsafeNewCipherState(cipherSuite, fuzzKey, 0)
		c := newConn(rc, send, recv, connOptions{rekeyMessages: maxMessagesPerKey, rekeyBytes: DefaultRekeyBytes}, nil, nil)
		defer c.Close()
		for i := 0; i < 1000; i++ {
			p, err := c.ReadFrame()
			if err != nil {
				if errors.Is(err, ErrBadFrame) && !rc.closed {
					t.Fatal("bad frame did not close the transport")
				}
				return
			}
			if len(p) > MaxPayload {
				t.Fatalf("frame of %d bytes", len(p))
			}
		}
	})
}

// FuzzAcceptHandshake feeds arbitrary dialer bytes to the responder: it must
// fail cleanly, never panic.
func FuzzAcceptHandshake(f *testing.F) {
	f.Add([]byte{selNX, 0, 32})
	f.Add(append([]byte{selXX, 0, 40}, make([]byte, 40)...))
	f.Add(append([]byte{selIK, 0, 200}, make([]byte, 200)...))
	f.Add([]byte{0x09})
	store := newStore(f)
	local := storeKeys(store)
	f.Fuzz(func(t *testing.T, wire []byte) {
		rc := &readerConn{Reader: bytes.NewReader(wire)}
		c, err := accept(context.Background(), rc, local, ServerConfig{}, nil)
		if err == nil {
			c.Close()
		}
	})
}

// FuzzDialHandshake feeds arbitrary responder bytes to each dialer pattern:
// it must fail cleanly, never panic.
func FuzzDialHandshake(f *testing.F) {
	f.Add([]byte{0, 48}, byte(0))
	f.Add(append([]byte{0, 200}, make([]byte, 200)...), byte(1))
	f.Add([]byte{0xff, 0xff, 1, 2, 3}, byte(2))
	relay, dialer := newStore(f), newStore(f)
	f.Fuzz(func(t *testing.T, wire []byte, mode byte) {
		cfg := DialConfig{ExpectFingerprint: relay.Identity().Fingerprint()}
		if mode&1 != 0 {
			cfg.ExpectLinkKey = relay.Link().Public
		}
		var local *localKeys
		if mode&2 != 0 {
			local = storeKeys(dialer)
		}
		rc := &readerConn{Reader: bytes.NewReader(wire)}
		if c, err := dial(context.Background(), rc, local, cfg); err == nil {
			c.Close()
			t.Fatal("handshake with arbitrary bytes succeeded")
		}
	})
}
