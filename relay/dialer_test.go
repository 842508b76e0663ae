package relay

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unfed/unfed/relay/cell"
	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/relay/link"
)

func openStore(t *testing.T) *keys.Store {
	t.Helper()
	s, err := keys.Open(t.TempDir(), keys.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// linkListener serves link handshakes for store on 127.0.0.1 and returns the
// address and a channel of the links it established.
func linkListener(t *testing.T, store *keys.Store) (string, <-chan *link.Conn) {
	t.Helper()
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := link.NewListener(tl, link.ListenerConfig{Server: link.ServerConfig{Store: store}})
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan *link.Conn, 8)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			ch <- c
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return tl.Addr().String(), ch
}

// TestLinkPoolPrefersFresh: when the pool's own dial to a peer completes
// while a link the peer dialed is pooled, the pool keeps the fresh link it
// authenticated itself (spec/09-relay-operation.md §4).
func TestLinkPoolPrefersFresh(t *testing.T) {
	r, f := openStore(t), openStore(t)
	rAddr, rLinks := linkListener(t, r)
	fAddr, _ := linkListener(t, f)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pool := newLinkPool(ctx, r, link.Options{}, slog.New(slog.DiscardHandler))
	pool.allowPrivate = true
	defer pool.close()

	// F dials R: R pools the accepted link.
	conn, err := net.Dial("tcp", rAddr)
	if err != nil {
		t.Fatal(err)
	}
	fl, err := link.Dial(ctx, conn, link.DialConfig{Identity: f, ExpectFingerprint: r.Identity().Fingerprint(),
		ExpectLinkKey: r.Link().Public})
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	accepted := <-rLinks
	pool.add(accepted)
	fp := f.Identity().Fingerprint()
	if got, err := pool.Dial(ctx, fp, nil); err != nil || got != accepted {
		t.Fatalf("pooled accepted link not reused: %v", err)
	}

	// R's own dial to F, racing with the accepted link, completes.
	call := &dialCall{done: make(chan struct{})}
	pool.wg.Add(1)
	pool.dial(fp, []cell.LinkSpec{{Transport: "tcp", Addr: fAddr, LinkKey: f.Link().Public}}, call)
	if call.err != nil {
		t.Fatal(call.err)
	}
	if call.conn == accepted {
		t.Fatal("the dial returned the older accepted link")
	}
	got, err := pool.Dial(ctx, fp, nil)
	if err != nil || got != call.conn {
		t.Fatalf("pool does not prefer the fresh link: %v", err)
	}
	if isDone(accepted) {
		t.Fatal("the older link was closed; it may carry circuits")
	}
}

// TestExtendPrivateRefused: by default EXTEND does not dial DNS names,
// loopback, private, link-local or shared addresses (Tor's
// ExtendAllowPrivateAddresses 0): no connection reaches a listener on
// 127.0.0.1. With extend_allow_private_addresses, the same EXTEND connects.
func TestExtendPrivateRefused(t *testing.T) {
	for _, a := range []string{"localhost:1", "127.0.0.1:1", "10.1.2.3:1", "172.16.0.1:1", "192.168.1.1:1",
		"169.254.1.1:1", "100.64.0.1:1", "0.1.2.3:1", "[::1]:1", "[fd00::1]:1", "[fe80::1%eth0]:1",
		"[::ffff:127.0.0.1]:1", "224.0.0.1:1", "example.org:443", "nonsense"} {
		if err := publicTarget(a); !errors.Is(err, errPrivateTarget) {
			t.Errorf("%s allowed: %v", a, err)
		}
	}
	for _, a := range []string{"192.0.2.1:443", "8.8.8.8:9001", "[2001:db8::1]:443"} {
		if err := publicTarget(a); err != nil {
			t.Errorf("%s refused: %v", a, err)
		}
	}

	r, f := openStore(t), openStore(t)
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var dialed atomic.Int64
	ln, err := link.NewListener(countingListener{tl, &dialed}, link.ListenerConfig{Server: link.ServerConfig{Store: f}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	spec := []cell.LinkSpec{{Transport: "tcp", Addr: tl.Addr().String(), LinkKey: f.Link().Public}}
	for _, allow := range []bool{false, true} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		pool := newLinkPool(ctx, r, link.Options{}, slog.New(slog.DiscardHandler))
		pool.allowPrivate = allow
		_, err := pool.Dial(ctx, f.Identity().Fingerprint(), spec)
		pool.close()
		cancel()
		switch {
		case !allow && (!errors.Is(err, errPrivateTarget) || dialed.Load() != 0):
			t.Fatalf("EXTEND to 127.0.0.1 by default: %v, %d connections", err, dialed.Load())
		case allow && (err != nil || dialed.Load() != 1):
			t.Fatalf("EXTEND to 127.0.0.1 allowed: %v, %d connections", err, dialed.Load())
		}
	}
}

// countingListener counts accepted connections.
type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}
