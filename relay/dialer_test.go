package relay

import (
	"context"
	"log/slog"
	"net"
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
