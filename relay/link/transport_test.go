package link_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/relay/link"
	"github.com/unfed/unfed/transports"
)

const oneMiB = 1 << 20

func newStore(t testing.TB) *keys.Store {
	t.Helper()
	s, err := keys.Open(t.TempDir(), keys.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// serveEcho runs a link listener on ln that echoes every frame of every link.
func serveEcho(t testing.TB, ln net.Listener, store *keys.Store) {
	t.Helper()
	l, err := link.NewListener(ln, link.ListenerConfig{Server: link.ServerConfig{Store: store}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				for {
					p, err := c.ReadFrame()
					if err != nil {
						return
					}
					if err := c.WriteFrame(p); err != nil {
						return
					}
				}
			}()
		}
	}()
}

// moveMiB sends 1 MiB of random bytes over c in 32 KiB frames and checks the
// echo.
func moveMiB(t testing.TB, c *link.Conn) {
	t.Helper()
	msg := make([]byte, oneMiB)
	rand.Read(msg)
	const chunk = 32 << 10
	errc := make(chan error, 1)
	go func() {
		for off := 0; off < len(msg); off += chunk {
			if err := c.WriteFrame(msg[off : off+chunk]); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	got := make([]byte, 0, len(msg))
	for len(got) < len(msg) {
		p, err := c.ReadFrame()
		if err != nil {
			t.Fatalf("after %d bytes: %v", len(got), err)
		}
		got = append(got, p...)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatal("1 MiB came back altered")
	}
}

// dialLink dials addr with d and completes a Noise link to relay.
func dialLink(t testing.TB, ctx context.Context, d transports.Dialer, addr string, relay *keys.Store, identity *keys.Store) *link.Conn {
	t.Helper()
	nc, err := d.DialContext(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := link.Dial(ctx, nc, link.DialConfig{
		Identity:          identity,
		ExpectFingerprint: relay.Identity().Fingerprint(),
		ExpectLinkKey:     relay.Link().Public,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func requireObfs4proxy(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("obfs4proxy")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("obfs4proxy not installed; run make deps")
		}
		t.Skip("obfs4proxy not installed; run make deps")
	}
	return p
}

// listenVia starts a server-side transport and a link echo server on it.
func listenVia(t testing.TB, ctx context.Context, name string, cfg transports.Config, relay *keys.Store) transports.Listener {
	t.Helper()
	tr, ok := transports.Get(name)
	if !ok {
		t.Fatalf("no transport %q", name)
	}
	sf, err := tr.ServerFactory(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := sf.Listen(ctx, "127.0.0.1:0", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	serveEcho(t, ln, relay)
	return ln
}

func clientVia(t testing.TB, ctx context.Context, name string, cfg transports.Config, args transports.Args) transports.Dialer {
	t.Helper()
	tr, _ := transports.Get(name)
	cf, err := tr.ClientFactory(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cf.Close() })
	d, err := cf.ParseArgs(args)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestLinkOverTransports(t *testing.T) {
	names := []string{"tcp", "quic", "obfs4", "managed"}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			relay, dialer := newStore(t), newStore(t)
			var cfg transports.Config
			if name == "managed" {
				cfg.PT = transports.PTConfig{Path: requireObfs4proxy(t), Method: "obfs4"}
			}
			ln := listenVia(t, ctx, name, cfg, relay)
			d := clientVia(t, ctx, name, cfg, ln.Args())
			// A relay link (IK) and a client link (NK) over the same listener.
			c := dialLink(t, ctx, d, ln.Addr().String(), relay, dialer)
			moveMiB(t, c)
			cc := dialLink(t, ctx, d, ln.Addr().String(), relay, nil)
			if err := cc.WriteFrame([]byte("client")); err != nil {
				t.Fatal(err)
			}
			if p, err := cc.ReadFrame(); err != nil || string(p) != "client" {
				t.Fatalf("client link echo %q %v", p, err)
			}
		})
	}
}

func TestObfs4ProxyInterop(t *testing.T) {
	path := requireObfs4proxy(t)
	pt := transports.PTConfig{Path: path, Method: "obfs4"}
	t.Run("obfs4proxy client to in-process obfs4 server", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		relay := newStore(t)
		ln := listenVia(t, ctx, "obfs4", transports.Config{}, relay)
		line := transports.BridgeLine(ln.Addr().String(), relay.Identity().Fingerprint(), ln.Args())
		bridge, err := transports.ParseBridgeLine(line)
		if err != nil {
			t.Fatal(err)
		}
		d := clientVia(t, ctx, "managed", transports.Config{PT: pt}, bridge.Args)
		moveMiB(t, dialLink(t, ctx, d, bridge.Addr, relay, newStore(t)))
	})
	t.Run("in-process obfs4 client to obfs4proxy server", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		relay := newStore(t)
		ln := listenVia(t, ctx, "managed", transports.Config{PT: pt}, relay)
		d := clientVia(t, ctx, "obfs4", transports.Config{}, ln.Args())
		moveMiB(t, dialLink(t, ctx, d, ln.Addr().String(), relay, nil))
	})
}

func TestLinkWrongIdentityOverObfs4(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	relay, other := newStore(t), newStore(t)
	ln := listenVia(t, ctx, "obfs4", transports.Config{}, relay)
	d := clientVia(t, ctx, "obfs4", transports.Config{}, ln.Args())
	nc, err := d.DialContext(ctx, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_, err = link.Dial(ctx, nc, link.DialConfig{ExpectFingerprint: other.Identity().Fingerprint()})
	if !errors.Is(err, link.ErrWrongIdentity) {
		t.Fatalf("dial expecting another relay gave %v", err)
	}
}
