package quic

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/unfed/unfed/transports/base"
)

func TestRoundTrip(t *testing.T) {
	sf, err := Transport{}.ServerFactory(base.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ln, err := sf.Listen(ctx, "127.0.0.1:0", "")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, ok := ln.Addr().(*net.UDPAddr); !ok || ln.Addr().(*net.UDPAddr).Port == 0 {
		t.Fatalf("listener address %v", ln.Addr())
	}
	go func() {
		s, err := ln.Accept()
		if err != nil {
			return
		}
		defer s.Close()
		io.Copy(s, s)
	}()
	cf, _ := Transport{}.ClientFactory(ctx, base.Config{})
	d, err := cf.ParseArgs(base.Args{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := d.DialContext(ctx, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := make([]byte, 1<<20)
	rand.Read(msg)
	go c.Write(msg)
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatal("echo differs")
	}
}

func TestWrongALPNRefused(t *testing.T) {
	sf, _ := Transport{}.ServerFactory(base.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ln, err := sf.Listen(ctx, "127.0.0.1:0", "")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = quicgo.DialAddr(ctx, ln.Addr().String(),
		&tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h3"}}, nil)
	if err == nil {
		t.Fatal("QUIC handshake with ALPN h3 succeeded")
	}
}
