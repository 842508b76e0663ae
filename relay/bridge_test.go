package relay_test

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unfed/unfed/relay"
	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/relay/link"
)

// countingConn counts the bytes read from it.
type countingConn struct {
	net.Conn
	n atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// probeLink dials addr over plain TCP, as a scanner would, and tries a client
// link handshake (NX: it knows no key) for at most wait. It returns how many
// bytes the listener sent and the descriptor, if the handshake yielded one.
func probeLink(t *testing.T, addr string, fp keys.Fingerprint, wait time.Duration) (int64, []byte) {
	t.Helper()
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn := &countingConn{Conn: raw}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	lc, err := link.Dial(ctx, conn, link.DialConfig{ExpectFingerprint: fp, Options: link.Options{HandshakeTimeout: wait}})
	if err != nil {
		return conn.n.Load(), nil
	}
	defer lc.Close()
	return conn.n.Load(), lc.PeerDescriptor()
}

// TestBridgeNotDisclosedOnProbe: a bridge refuses to run a plain (TCP or
// QUIC) listener, and its obfs4 listener sends nothing, and so no
// descriptor, to a dialer without the bridge's obfs4 cert, even one that
// knows its fingerprint. The mutation (plain listeners allowed, descriptor
// handed out there, as before issue 23) shows a port scan then reads the
// descriptor.
func TestBridgeNotDisclosedOnProbe(t *testing.T) {
	for name, mod := range map[string]func(*relay.Config){
		"tcp":  func(c *relay.Config) { c.OR.TCP = "127.0.0.1:0" },
		"quic": func(c *relay.Config) { c.OR.TCP, c.OR.QUIC = "", "127.0.0.1:0" },
	} {
		cfg := testConfig(t, "bridge", "bridge", "guard")
		cfg.OR.Obfs4 = "127.0.0.1:0"
		mod(&cfg)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := relay.Run(ctx, cfg, daemonEnv(&syncBuffer{}))
		cancel()
		if err == nil || !strings.Contains(err.Error(), "bridge") {
			t.Fatalf("a bridge with a plain %s listener: %v, want refused", name, err)
		}
	}

	cfg := testConfig(t, "bridge", "bridge", "guard")
	cfg.OR.TCP, cfg.OR.Obfs4 = "", "127.0.0.1:0"
	n := startRelay(t, cfg)
	if got, desc := probeLink(t, n.addr("or-obfs4"), n.fp, time.Second); got != 0 || desc != nil {
		t.Fatalf("obfs4 listener sent %d bytes (descriptor %v) to a dialer without its cert", got, desc != nil)
	}

	t.Run("mutation", func(t *testing.T) {
		defer relay.SetPlainBridgeListeners()()
		cfg := testConfig(t, "bridge", "bridge", "guard")
		cfg.OR.Obfs4 = "127.0.0.1:0"
		n := startRelay(t, cfg)
		got, desc := probeLink(t, n.addr("or"), n.fp, 10*time.Second)
		if got == 0 || desc == nil {
			t.Fatalf("with plain bridge listeners a probe should read the descriptor: %d bytes", got)
		}
	})
}
