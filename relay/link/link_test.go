package link

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/unfed/unfed/relay/keys"
)

func newStore(t testing.TB) *keys.Store {
	t.Helper()
	s, err := keys.Open(t.TempDir(), keys.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t testing.TB) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			ch <- nil
			return
		}
		ch <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-ch
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

type result struct {
	c   *Conn
	err error
}

// handshake runs Dial and Accept over a fresh loopback TCP connection.
func handshake(t testing.TB, dc DialConfig, sc ServerConfig) (d, a *Conn, derr, aerr error) {
	t.Helper()
	cc, sconn := tcpPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ch := make(chan result, 1)
	go func() {
		c, err := Accept(ctx, sconn, sc)
		ch <- result{c, err}
	}()
	d, derr = Dial(ctx, cc, dc)
	r := <-ch
	if d != nil {
		t.Cleanup(func() { d.Close() })
	}
	if r.c != nil {
		t.Cleanup(func() { r.c.Close() })
	}
	return d, r.c, derr, r.err
}

// exchange sends frames both ways and checks they arrive intact.
func exchange(t testing.TB, a, b *Conn, n, size int) {
	t.Helper()
	errc := make(chan error, 2)
	send := func(c *Conn, tag byte) {
		for i := 0; i < n; i++ {
			p := bytes.Repeat([]byte{tag, byte(i)}, size/2)
			if err := c.WriteFrame(p); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}
	recv := func(c *Conn, tag byte) error {
		for i := 0; i < n; i++ {
			p, err := c.ReadFrame()
			if err != nil {
				return err
			}
			if want := bytes.Repeat([]byte{tag, byte(i)}, size/2); !bytes.Equal(p, want) {
				return fmt.Errorf("frame %d: got %d bytes, not the ones sent", i, len(p))
			}
		}
		return nil
	}
	go send(a, 'a')
	go send(b, 'b')
	if err := recv(b, 'a'); err != nil {
		t.Fatal(err)
	}
	if err := recv(a, 'b'); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
}

func TestLinkPatterns(t *testing.T) {
	relayA, relayB := newStore(t), newStore(t)
	fpA, fpB := relayA.Identity().Fingerprint(), relayB.Identity().Fingerprint()
	cases := []struct {
		name      string
		identity  *keys.Store
		knowKey   bool
		wantRelay bool
	}{
		{"IK", relayA, true, true},
		{"XX", relayA, false, true},
		{"NK", nil, true, false},
		{"NX", nil, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dc := DialConfig{Identity: tc.identity, ExpectFingerprint: fpB}
			if tc.knowKey {
				dc.ExpectLinkKey = relayB.Link().Public
			}
			d, a, derr, aerr := handshake(t, dc, ServerConfig{Store: relayB})
			if derr != nil || aerr != nil {
				t.Fatalf("dial: %v, accept: %v", derr, aerr)
			}
			if fp, isRelay := d.Peer(); fp != fpB || !isRelay {
				t.Errorf("dialer sees peer %s relay=%v, want %s", fp, isRelay, fpB)
			}
			fp, isRelay := a.Peer()
			if isRelay != tc.wantRelay {
				t.Errorf("responder sees relay=%v, want %v", isRelay, tc.wantRelay)
			}
			if tc.wantRelay && fp != fpA {
				t.Errorf("responder sees %s, want %s", fp, fpA)
			}
			if !tc.wantRelay && !fp.IsZero() {
				t.Errorf("client link has fingerprint %s", fp)
			}
			if d.Version() != 1 || a.Version() != 1 {
				t.Errorf("versions %d/%d, want 1", d.Version(), a.Version())
			}
			exchange(t, d, a, 20, 1000)
			exchange(t, d, a, 2, MaxPayload-1)
		})
	}
}

func TestLinkWrongIdentityRefused(t *testing.T) {
	expected, impostor, dialer := newStore(t), newStore(t), newStore(t)
	want := expected.Identity().Fingerprint()
	t.Run("relay without link key", func(t *testing.T) {
		_, _, derr, _ := handshake(t, DialConfig{Identity: dialer, ExpectFingerprint: want}, ServerConfig{Store: impostor})
		if !errors.Is(derr, ErrWrongIdentity) {
			t.Fatalf("dial error %v, want ErrWrongIdentity", derr)
		}
	})
	t.Run("client without link key", func(t *testing.T) {
		_, _, derr, _ := handshake(t, DialConfig{ExpectFingerprint: want}, ServerConfig{Store: impostor})
		if !errors.Is(derr, ErrWrongIdentity) {
			t.Fatalf("dial error %v, want ErrWrongIdentity", derr)
		}
	})
	t.Run("impostor certifies a known link key", func(t *testing.T) {
		// The impostor holds the expected relay's link key but not its
		// identity key: its certificate names the wrong identity.
		cc, sc := tcpPair(t)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stolen := &localKeys{id: impostor.Identity(), link: expected.Link()}
		go func() {
			if c, err := accept(ctx, sc, stolen, ServerConfig{}, nil); err == nil {
				c.Close()
			}
		}()
		_, err := Dial(ctx, cc, DialConfig{Identity: dialer, ExpectFingerprint: want, ExpectLinkKey: expected.Link().Public})
		if !errors.Is(err, ErrWrongIdentity) {
			t.Fatalf("dial error %v, want ErrWrongIdentity", err)
		}
	})
	t.Run("responder lacks the expected link key", func(t *testing.T) {
		d, _, derr, aerr := handshake(t, DialConfig{Identity: dialer, ExpectFingerprint: want, ExpectLinkKey: expected.Link().Public},
			ServerConfig{Store: impostor})
		if derr == nil || aerr == nil || d != nil {
			t.Fatalf("handshake with the wrong static key succeeded: dial %v, accept %v", derr, aerr)
		}
	})
}

func TestVersionNegotiation(t *testing.T) {
	relay := newStore(t)
	fp := relay.Identity().Fingerprint()
	d, a, derr, aerr := handshake(t,
		DialConfig{ExpectFingerprint: fp, Options: Options{Versions: []uint16{1, 2, 3}}},
		ServerConfig{Store: relay, Options: Options{Versions: []uint16{4, 3, 2}}})
	if derr != nil || aerr != nil {
		t.Fatalf("dial %v accept %v", derr, aerr)
	}
	if d.Version() != 3 || a.Version() != 3 {
		t.Fatalf("negotiated %d/%d, want 3", d.Version(), a.Version())
	}
	_, _, derr, aerr = handshake(t,
		DialConfig{Identity: newStore(t), ExpectFingerprint: fp, Options: Options{Versions: []uint16{1}}},
		ServerConfig{Store: relay, Options: Options{Versions: []uint16{2}}})
	if !errors.Is(derr, ErrNoCommonVersion) || !errors.Is(aerr, ErrNoCommonVersion) {
		t.Fatalf("dial %v accept %v, want ErrNoCommonVersion on both", derr, aerr)
	}
}

func TestRekey(t *testing.T) {
	relay := newStore(t)
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{RekeyMessages: 5, Metrics: m}
	d, a, derr, aerr := handshake(t,
		DialConfig{ExpectFingerprint: relay.Identity().Fingerprint(), Options: Options{RekeyBytes: 10000}},
		ServerConfig{Store: relay, Options: opts})
	if derr != nil || aerr != nil {
		t.Fatalf("dial %v accept %v", derr, aerr)
	}
	exchange(t, d, a, 60, 600)
	// Server: 60 frames at 4 per key; client: 60 frames of ~617 wire bytes at 10000 bytes per key.
	if got := testutil.ToFloat64(m.rekeys); got < 14 {
		t.Fatalf("%v rekeys counted, want at least 14", got)
	}
	// The server received 60 frames of 600-byte bodies: at least that many
	// wire bytes are counted.
	if got := testutil.ToFloat64(m.received); got < 60*600 {
		t.Fatalf("%v bytes received counted, want at least %d", got, 60*600)
	}
	if got := testutil.ToFloat64(m.sent); got < 60*600 {
		t.Fatalf("%v bytes sent counted, want at least %d", got, 60*600)
	}
}

func TestBadFrameClosesAndCounts(t *testing.T) {
	relay := newStore(t)
	m, _ := NewMetrics(prometheus.NewRegistry())
	cc, sc := tcpPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ch := make(chan result, 1)
	go func() {
		c, err := Accept(ctx, sc, ServerConfig{Store: relay, Options: Options{Metrics: m}})
		ch <- result{c, err}
	}()
	d, err := Dial(ctx, cc, DialConfig{ExpectFingerprint: relay.Identity().Fingerprint()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	if err := d.WriteFrame([]byte("good")); err != nil {
		t.Fatal(err)
	}
	// A frame of 40 garbage bytes, written under the link.
	if _, err := cc.Write(append([]byte{0, 40}, bytes.Repeat([]byte{0xAA}, 40)...)); err != nil {
		t.Fatal(err)
	}
	if p, err := r.c.ReadFrame(); err != nil || string(p) != "good" {
		t.Fatalf("first frame %q %v", p, err)
	}
	if _, err := r.c.ReadFrame(); !errors.Is(err, ErrBadFrame) {
		t.Fatalf("garbage frame gave %v, want ErrBadFrame", err)
	}
	select {
	case <-r.c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("link not closed after a bad frame")
	}
	if got := testutil.ToFloat64(m.badFrames.WithLabelValues("decrypt")); got != 1 {
		t.Fatalf("bad frames counted %v, want 1", got)
	}
	if err := r.c.WriteFrame([]byte("x")); err == nil {
		t.Fatal("write on a closed link succeeded")
	}
}

func TestShortFrameRejected(t *testing.T) {
	relay := newStore(t)
	m, _ := NewMetrics(prometheus.NewRegistry())
	d, a, derr, aerr := handshake(t, DialConfig{ExpectFingerprint: relay.Identity().Fingerprint()},
		ServerConfig{Store: relay, Options: Options{Metrics: m}})
	if derr != nil || aerr != nil {
		t.Fatal(derr, aerr)
	}
	if _, err := d.conn.Write([]byte{0, 3, 1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.ReadFrame(); !errors.Is(err, ErrBadFrame) {
		t.Fatalf("short frame gave %v", err)
	}
	if got := testutil.ToFloat64(m.badFrames.WithLabelValues("short")); got != 1 {
		t.Fatalf("counted %v", got)
	}
}

func TestFrameTooLarge(t *testing.T) {
	relay := newStore(t)
	d, _, derr, aerr := handshake(t, DialConfig{ExpectFingerprint: relay.Identity().Fingerprint()}, ServerConfig{Store: relay})
	if derr != nil || aerr != nil {
		t.Fatal(derr, aerr)
	}
	if err := d.WriteFrame(make([]byte, MaxPayload+1)); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("got %v, want ErrFrameTooLarge", err)
	}
	if err := d.WriteFrame(make([]byte, MaxPayload)); err != nil {
		t.Fatalf("max payload refused: %v", err)
	}
}

func TestIdleTimeoutAndKeepalive(t *testing.T) {
	relay := newStore(t)
	fp := relay.Identity().Fingerprint()
	// A silent dialer is dropped by the responder's idle timer.
	_, a, derr, aerr := handshake(t, DialConfig{ExpectFingerprint: fp, Options: Options{Keepalive: -1, IdleTimeout: -1}},
		ServerConfig{Store: relay, Options: Options{IdleTimeout: 50 * time.Millisecond}})
	if derr != nil || aerr != nil {
		t.Fatal(derr, aerr)
	}
	if _, err := a.ReadFrame(); !errors.Is(err, ErrIdleTimeout) {
		t.Fatalf("silent peer gave %v, want ErrIdleTimeout", err)
	}
	// A dialer sending keepalives outlives many idle periods.
	d, a, derr, aerr := handshake(t, DialConfig{ExpectFingerprint: fp, Options: Options{Keepalive: 10 * time.Millisecond, IdleTimeout: -1}},
		ServerConfig{Store: relay, Options: Options{IdleTimeout: 500 * time.Millisecond}})
	if derr != nil || aerr != nil {
		t.Fatal(derr, aerr)
	}
	got := make(chan error, 1)
	go func() {
		p, err := a.ReadFrame()
		if err == nil && string(p) != "late" {
			err = fmt.Errorf("got %q", p)
		}
		got <- err
	}()
	time.Sleep(1500 * time.Millisecond) // three idle timeouts
	if err := d.WriteFrame([]byte("late")); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatalf("link kept alive by keepalives: %v", err)
	}
}

func TestHandshakeTimeout(t *testing.T) {
	relay := newStore(t)
	_, sc := tcpPair(t)
	_, err := Accept(context.Background(), sc, ServerConfig{Store: relay, Options: Options{HandshakeTimeout: 50 * time.Millisecond}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("silent dialer gave %v, want a deadline error", err)
	}
}

func TestConcurrentWriters(t *testing.T) {
	relay := newStore(t)
	d, a, derr, aerr := handshake(t, DialConfig{ExpectFingerprint: relay.Identity().Fingerprint()},
		ServerConfig{Store: relay, Options: Options{RekeyMessages: 7}})
	if derr != nil || aerr != nil {
		t.Fatal(derr, aerr)
	}
	const writers, each = 4, 100
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if err := a.WriteFrame([]byte(fmt.Sprintf("w%d-%d", w, i))); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	next := make([]int, writers)
	for n := 0; n < writers*each; n++ {
		p, err := d.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		var w, i int
		if _, err := fmt.Sscanf(string(p), "w%d-%d", &w, &i); err != nil || w < 0 || w >= writers || i != next[w] {
			t.Fatalf("frame %q out of order", p)
		}
		next[w]++
	}
	wg.Wait()
}

func TestBridgeDescriptorOnlyToClients(t *testing.T) {
	relay, dialer := newStore(t), newStore(t)
	desc := []byte("signed descriptor bytes")
	scfg := ServerConfig{Store: relay, Descriptor: func() []byte { return desc }}
	d, _, derr, aerr := handshake(t, DialConfig{ExpectFingerprint: relay.Identity().Fingerprint()}, scfg)
	if derr != nil || aerr != nil {
		t.Fatalf("client dial %v accept %v", derr, aerr)
	}
	if string(d.PeerDescriptor()) != string(desc) {
		t.Fatalf("client got descriptor %q", d.PeerDescriptor())
	}
	d, _, derr, aerr = handshake(t, DialConfig{Identity: dialer, ExpectFingerprint: relay.Identity().Fingerprint()}, scfg)
	if derr != nil || aerr != nil {
		t.Fatalf("relay dial %v accept %v", derr, aerr)
	}
	if d.PeerDescriptor() != nil {
		t.Fatal("a relay dialer was sent the bridge descriptor")
	}
}
