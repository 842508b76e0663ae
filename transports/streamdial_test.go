package transports

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/unfed/unfed/transports/base"
)

// TestStreamDial: with Config.Dial (a Tor SOCKS dialer in production) tcp
// and obfs4 open every connection through it, never directly, and quic and
// managed refuse it rather than connect around it.
func TestStreamDial(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
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
			c.Close()
		}
	}()
	var calls []string
	hook := func(ctx context.Context, network, addr string) (net.Conn, error) {
		calls = append(calls, addr)
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	ctx := context.Background()
	tcp, _ := Get("tcp")
	cf, err := tcp.ClientFactory(ctx, Config{Dial: hook})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := cf.ParseArgs(Args{})
	c, err := d.DialContext(ctx, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if len(calls) != 1 || calls[0] != ln.Addr().String() {
		t.Fatalf("tcp did not dial through the hook: %v", calls)
	}

	// obfs4: the hook's failure is the dial's failure, so nothing went
	// around it.
	refused := errors.New("hook refused")
	obfs, _ := Get("obfs4")
	ocf, err := obfs.ClientFactory(ctx, Config{Dial: func(context.Context, string, string) (net.Conn, error) { return nil, refused }})
	if err != nil {
		t.Fatal(err)
	}
	od, err := ocf.ParseArgs(Args{"cert": {strings.Repeat("A", 70)}, "iat-mode": {"0"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := od.DialContext(ctx, ln.Addr().String()); err == nil || !strings.Contains(err.Error(), "hook refused") {
		t.Fatalf("obfs4 dial: %v, want the hook's error", err)
	}

	for _, name := range []string{"quic", "managed"} {
		tr, _ := Get(name)
		_, err := tr.ClientFactory(ctx, Config{Dial: hook, PT: base.PTConfig{Path: "/bin/false", Method: "obfs4"}})
		if !errors.Is(err, base.ErrNoStreamDial) {
			t.Errorf("%s with a stream dialer: %v, want ErrNoStreamDial", name, err)
		}
	}
}
