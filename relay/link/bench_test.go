package link_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/relay/link"
	"github.com/unfed/unfed/transports"
)

// serveSink runs a link listener on ln that reads and drops every frame.
func serveSink(b *testing.B, ln net.Listener, store *keys.Store) {
	l, err := link.NewListener(ln, link.ListenerConfig{
		Server:         link.ServerConfig{Store: store},
		HandshakeRate:  1e6,
		HandshakeBurst: 1e6,
		MaxLinksPerIP:  1e6,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				for {
					if _, err := c.ReadFrame(); err != nil {
						return
					}
				}
			}()
		}
	}()
}

func benchSetup(b *testing.B, name string) (transports.Dialer, string, *keys.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	relay := newStore(b)
	tr, _ := transports.Get(name)
	sf, err := tr.ServerFactory(transports.Config{})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := sf.Listen(ctx, "127.0.0.1:0", b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	serveSink(b, ln, relay)
	cf, err := tr.ClientFactory(ctx, transports.Config{})
	if err != nil {
		b.Fatal(err)
	}
	d, err := cf.ParseArgs(ln.Args())
	if err != nil {
		b.Fatal(err)
	}
	return d, ln.Addr().String(), relay
}

// BenchmarkLinkThroughput measures one-way link throughput (frames of
// MaxPayload bytes) from dialer to responder over loopback.
func BenchmarkLinkThroughput(b *testing.B) {
	for _, name := range []string{"tcp", "quic", "obfs4"} {
		b.Run(name, func(b *testing.B) {
			d, addr, relay := benchSetup(b, name)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			c := dialLink(b, ctx, d, addr, relay, newStore(b))
			p := make([]byte, link.MaxPayload)
			b.SetBytes(int64(len(p)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := c.WriteFrame(p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkHandshake measures a transport connection plus a relay (IK) link
// handshake, and a client (NK) handshake over tcp.
func BenchmarkHandshake(b *testing.B) {
	for _, name := range []string{"tcp", "quic", "obfs4"} {
		b.Run(name, func(b *testing.B) {
			d, addr, relay := benchSetup(b, name)
			id := newStore(b)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				benchDial(b, d, addr, relay, id)
			}
		})
	}
	b.Run("tcp-client-NK", func(b *testing.B) {
		d, addr, relay := benchSetup(b, "tcp")
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			benchDial(b, d, addr, relay, nil)
		}
	})
}

func benchDial(b *testing.B, d transports.Dialer, addr string, relay, id *keys.Store) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	nc, err := d.DialContext(ctx, addr)
	if err != nil {
		b.Fatal(err)
	}
	c, err := link.Dial(ctx, nc, link.DialConfig{
		Identity:          id,
		ExpectFingerprint: relay.Identity().Fingerprint(),
		ExpectLinkKey:     relay.Link().Public,
	})
	if err != nil {
		b.Fatal(err)
	}
	c.Close()
}
