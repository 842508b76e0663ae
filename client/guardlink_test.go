package client

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/relay/link"
	"github.com/unfed/unfed/relay/origin"
	"github.com/unfed/unfed/transports/tcp"
)

// TestGuardLinkShared: circuits through one guard share one link, dialed
// once even when many builds start together; a failed link is dialed again.
func TestGuardLinkShared(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, err := keys.Open(t.TempDir(), keys.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tl, err := tcp.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := link.NewListener(tl, link.ListenerConfig{Server: link.ServerConfig{Store: store}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int32
	var conns sync.Map
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			conns.Store(c, true)
		}
	}()
	defer conns.Range(func(k, _ any) bool { k.(*link.Conn).Close(); return true })
	g := &directory.RouterStatus{Fingerprint: store.Identity().Fingerprint(), LinkKey: store.Link().Public,
		Transports: []directory.Transport{{Name: "tcp", Addr: ln.Addr().String()}}}
	d := newDialer("tcp", slog.New(slog.DiscardHandler))
	defer d.close()

	const n = 8
	muxes := make([]*origin.Mux, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := d.guardMux(ctx, g)
			if err != nil {
				t.Error(err)
			}
			muxes[i] = m
		}()
	}
	wg.Wait()
	for i := range muxes {
		if muxes[i] == nil || muxes[i] != muxes[0] {
			t.Fatalf("build %d got another link", i)
		}
	}
	waitFor(t, func() bool { return accepted.Load() == 1 }, "one accepted link")

	// The link fails: the next build dials a new one.
	muxes[0].Close()
	m, err := d.guardMux(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	if m == muxes[0] {
		t.Fatal("a closed link was handed out again")
	}
	waitFor(t, func() bool { return accepted.Load() == 2 }, "a second accepted link")
}

func waitFor(t *testing.T, ok func() bool, what string) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}
