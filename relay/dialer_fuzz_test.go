package relay

import (
	"context"
	"log/slog"
	"slices"
	"testing"

	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/relay/link"
)

// FuzzTransportDialer feeds the transport names and arguments an EXTEND's
// link specifiers carry (attacker-chosen) to the pool's argument parsing:
// it must never panic, and only the relay-to-relay transports are dialable.
func FuzzTransportDialer(f *testing.F) {
	f.Add("tcp", "")
	f.Add("tcp", "x=1")
	f.Add("obfs4", "cert=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA iat-mode=0")
	f.Add("obfs4", "cert=\\= iat-mode=9")
	f.Add("quic", "")
	f.Add("managed", "a=b")
	f.Add("nonexistent", "\\")
	store, err := keys.Open(f.TempDir(), keys.Options{})
	if err != nil {
		f.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := newLinkPool(ctx, store, link.Options{}, slog.New(slog.DiscardHandler))
	defer p.close()
	f.Fuzz(func(t *testing.T, name, args string) {
		d, err := p.transportDialer(name, args)
		if err == nil && (d == nil || !slices.Contains(dialable, name)) {
			t.Fatalf("transport %q: dialer %v without an error", name, d)
		}
	})
}
