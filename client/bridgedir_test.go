package client

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/relay"
	"github.com/unfed/unfed/relay/daemon"
)

// tripwire is a TCP listener that counts the connections made to it.
type tripwire struct {
	ln net.Listener
	n  atomic.Int64
}

func newTripwire(t *testing.T) *tripwire {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tw := &tripwire{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tw.n.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return tw
}

// startBridge runs an in-process bridge relay (roles guard and bridge, obfs4
// only) that publishes nothing and keeps a directory cache from the shared
// network's authority, and returns its bridge line.
func startBridge(t *testing.T, n *testNet) string {
	t.Helper()
	cfg := relay.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.Nickname = "bridge"
	cfg.Roles = []string{"guard", "bridge"}
	cfg.OR.TCP, cfg.OR.Obfs4 = "", "127.0.0.1:0"
	cfg.Authorities = n.authorities
	cfg.ExtendAllowPrivate = true // the shared network is on 127.0.0.1
	out := &lines{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- relay.Run(ctx, cfg, daemon.Env{Log: slog.New(slog.DiscardHandler), Stdout: out, Stderr: io.Discard})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("bridge: %v", err)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		out.mu.Lock()
		s := out.buf.String()
		out.mu.Unlock()
		for _, l := range strings.Split(s, "\n") {
			if strings.HasPrefix(l, "obfs4 ") {
				return l
			}
		}
		select {
		case err := <-done:
			t.Fatalf("bridge exited: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatal("bridge printed no bridge line")
	return ""
}

// TestBridgeDirectoryFetch: a client with a bridge fetches the consensus
// through it (04-directory §10.2) and completes through it, while every
// authority address it knows is a tripwire that counts connections: none
// arrives. The mutation (bridge users fetching from the authorities, as
// before issue 23) trips the wire.
func TestBridgeDirectoryFetch(t *testing.T) {
	n := sharedNet(t)
	line := startBridge(t, n)
	tw := newTripwire(t)
	auths := func() []directory.AuthorityEntry {
		var out []directory.AuthorityEntry
		for _, a := range n.authorities {
			a.Address = tw.ln.Addr().String()
			out = append(out, a)
		}
		return out
	}
	rc := startClient(t, n, t.TempDir(), func(c *Config) {
		c.Authorities = auths()
		c.Bridges = []string{line}
	})
	if got := rc.complete(t, n.modelID, 2); got == "" {
		t.Fatal("no completion through the bridge")
	}
	rc.stop()
	if k := tw.n.Load(); k != 0 {
		t.Fatalf("%d connections to an authority address with a bridge configured", k)
	}

	t.Run("mutation", func(t *testing.T) {
		bridgeUsersFetchDirect = true
		defer func() { bridgeUsersFetchDirect = false }()
		cfg := DefaultConfig()
		cfg.DataDir, cfg.API.Listen, cfg.SOCKS.Listen = t.TempDir(), "127.0.0.1:0", ""
		cfg.Authorities, cfg.Bridges = auths(), []string{line}
		cfg.Models = []ModelConfig{{Path: n.modelPath}}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- Run(ctx, cfg, daemon.Env{Log: slog.New(slog.DiscardHandler), Stdout: io.Discard, Stderr: io.Discard})
		}()
		defer func() { cancel(); <-done }()
		deadline := time.Now().Add(20 * time.Second)
		for tw.n.Load() == 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if tw.n.Load() == 0 {
			t.Fatal("fetching from the authorities with bridges configured should have tripped the wire")
		}
	})
}
