package link

import (
	"bytes"
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"
)

// recordingConn keeps a copy of every Write, one element per call.
type recordingConn struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
}

func (r *recordingConn) Write(p []byte) (int, error) {
	r.mu.Lock()
	r.writes = append(r.writes, bytes.Clone(p))
	r.mu.Unlock()
	return r.Conn.Write(p)
}

// replayIK records a real IK handshake from dialer to responder, then plays
// the dialer's recorded bytes (message 1, then its confirmation frame) to a
// fresh Accept of the same responder, as an attacker on the path between two
// relays can. It returns what that Accept yielded.
func replayIK(t *testing.T) (*Conn, error) {
	t.Helper()
	dialer, responder := newStore(t), newStore(t)
	sc := ServerConfig{Store: responder, Options: Options{HandshakeTimeout: 5 * time.Second}}
	dc := DialConfig{Identity: dialer, ExpectFingerprint: responder.Identity().Fingerprint(),
		ExpectLinkKey: responder.Link().Public}

	cc, sconn := tcpPair(t)
	rec := &recordingConn{Conn: cc}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ch := make(chan result, 1)
	go func() {
		c, err := Accept(ctx, sconn, sc)
		ch <- result{c, err}
	}()
	d, err := Dial(ctx, rec, dc)
	if err != nil {
		t.Fatalf("real dial: %v", err)
	}
	defer d.Close()
	r := <-ch
	if r.err != nil {
		t.Fatalf("real accept: %v", r.err)
	}
	defer r.c.Close()
	if fp, ok := r.c.Peer(); !ok || fp != dialer.Identity().Fingerprint() {
		t.Fatalf("real link peer %v, relay %v", fp, ok)
	}
	rec.mu.Lock()
	writes := rec.writes
	rec.mu.Unlock()
	if len(writes) != 2 {
		t.Fatalf("dialer wrote %d times in the handshake, want message 1 and the confirmation", len(writes))
	}

	// The replay: same bytes, new connection, no dialer keys.
	ac, asrv := tcpPair(t)
	go func() {
		c, err := Accept(ctx, asrv, sc)
		ch <- result{c, err}
	}()
	if _, err := ac.Write(writes[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := readMsg(ac); err != nil { // the responder's message 2
		t.Fatalf("responder did not answer the replayed message 1: %v", err)
	}
	if _, err := ac.Write(writes[1]); err != nil {
		t.Fatal(err)
	}
	r = <-ch
	if r.c != nil {
		t.Cleanup(func() { r.c.Close() })
	}
	return r.c, r.err
}

// TestLinkHandshakeReplay: a recorded IK message 1 (with everything else the
// dialer sent) replayed to the responder within the certificate's lifetime
// yields no link, so nothing reaches the relay's link pool as the dialer
// (spec/01-link.md §3.5). The mutation, a responder that skips the key
// confirmation, shows the replay then yields an authenticated-looking link
// from the dialer, which is the attack.
func TestLinkHandshakeReplay(t *testing.T) {
	c, err := replayIK(t)
	if c != nil || !errors.Is(err, ErrHandshake) {
		t.Fatalf("replayed IK handshake: link %v, err %v; want no link and a handshake error", c != nil, err)
	}

	t.Run("mutation", func(t *testing.T) {
		skipKeyConfirm = true
		defer func() { skipKeyConfirm = false }()
		c, err := replayIK(t)
		if err != nil || c == nil {
			t.Fatalf("without key confirmation the replay should have yielded a link: %v", err)
		}
		if _, isRelay := c.Peer(); !isRelay {
			t.Fatal("the replayed link should claim the dialer's relay identity")
		}
	})
}
