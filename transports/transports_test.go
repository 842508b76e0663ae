package transports

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"
)

func TestRegistry(t *testing.T) {
	want := []string{"managed", "obfs4", "quic", "tcp"}
	got := Names()
	if len(got) != len(want) {
		t.Fatalf("names %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("names %v, want %v", got, want)
		}
		if tr, ok := Get(want[i]); !ok || tr.Name() != want[i] {
			t.Fatalf("Get(%q) = %v %v", want[i], tr, ok)
		}
	}
	tcp, _ := Get("tcp")
	if err := Register(tcp); err == nil {
		t.Fatal("duplicate registration accepted")
	}
}

// TestEveryListenerPortZero: ":0"-style addresses bind and report the port,
// and a dial through the registry reaches the listener.
func TestEveryListenerPortZero(t *testing.T) {
	for _, name := range []string{"tcp", "quic", "obfs4"} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			tr, _ := Get(name)
			sf, err := tr.ServerFactory(Config{})
			if err != nil {
				t.Fatal(err)
			}
			ln, err := sf.Listen(ctx, "127.0.0.1:0", t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				c, err := ln.Accept()
				if err == nil {
					io.Copy(c, c)
					c.Close()
				}
			}()
			cf, err := tr.ClientFactory(ctx, Config{})
			if err != nil {
				t.Fatal(err)
			}
			defer cf.Close()
			d, err := cf.ParseArgs(ln.Args())
			if err != nil {
				t.Fatal(err)
			}
			c, err := d.DialContext(ctx, ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write([]byte("ping")); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 4)
			if _, err := io.ReadFull(c, buf); err != nil || !bytes.Equal(buf, []byte("ping")) {
				t.Fatalf("echo %q %v", buf, err)
			}
		})
	}
}
