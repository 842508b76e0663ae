package link

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/time/rate"
)

func startListener(t *testing.T, cfg ListenerConfig) *Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewListener(ln, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// dialLink dials l as a client and, when the dial succeeds, takes the
// server side from l.
func dialLink(t *testing.T, l *Listener, dc DialConfig) (*Conn, *Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	d, err := Dial(ctx, nc, dc)
	if err != nil {
		return nil, nil, err
	}
	a, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return d, a, nil
}

func TestListenerLimitsPerIP(t *testing.T) {
	relay := newStore(t)
	m, _ := NewMetrics(prometheus.NewRegistry())
	l := startListener(t, ListenerConfig{Server: ServerConfig{Store: relay, Options: Options{Metrics: m}}, MaxLinksPerIP: 2})
	dc := DialConfig{ExpectFingerprint: relay.Identity().Fingerprint()}
	d1, a1, err := dialLink(t, l, dc)
	if err != nil {
		t.Fatal(err)
	}
	d2, _, err := dialLink(t, l, dc)
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if _, _, err := dialLink(t, l, dc); err == nil {
		t.Fatal("third link from one address accepted with MaxLinksPerIP 2")
	}
	if got := testutil.ToFloat64(m.refused.WithLabelValues("per_ip")); got != 1 {
		t.Fatalf("refusals counted %v, want 1", got)
	}
	// Closing a link frees its slot once the server side sees the close.
	d1.Close()
	if _, err := a1.ReadFrame(); err == nil {
		t.Fatal("read on a closed link succeeded")
	}
	d3, _, err := dialLink(t, l, dc)
	if err != nil {
		t.Fatalf("slot not freed after close: %v", err)
	}
	d3.Close()
}

func TestListenerHandshakeRate(t *testing.T) {
	relay := newStore(t)
	m, _ := NewMetrics(prometheus.NewRegistry())
	l := startListener(t, ListenerConfig{
		Server:         ServerConfig{Store: relay, Options: Options{Metrics: m}},
		HandshakeRate:  rate.Every(time.Hour),
		HandshakeBurst: 2,
	})
	dc := DialConfig{ExpectFingerprint: relay.Identity().Fingerprint()}
	for i := 0; i < 2; i++ {
		d, _, err := dialLink(t, l, dc)
		if err != nil {
			t.Fatalf("handshake %d within the burst: %v", i, err)
		}
		d.Close()
	}
	_, _, err := dialLink(t, l, dc)
	if !errors.Is(err, ErrHandshake) {
		t.Fatalf("handshake over the rate gave %v", err)
	}
	if got := testutil.ToFloat64(m.refused.WithLabelValues("rate")); got != 1 {
		t.Fatalf("rate refusals %v, want 1", got)
	}
}

func TestListenerCloseStopsAccept(t *testing.T) {
	l := startListener(t, ListenerConfig{Server: ServerConfig{Store: newStore(t)}})
	l.Close()
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("accept after close: %v", err)
	}
}
