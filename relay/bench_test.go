package relay_test

import (
	"context"
	"testing"
	"time"

	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/relay/link"
	"github.com/unfed/unfed/relay/origin"
	"github.com/unfed/unfed/transports/tcp"
)

// BenchmarkCircuitBuild builds and destroys three-hop circuits through three
// relays started with relay.Run, over real TCP links on 127.0.0.1: one
// CREATE and two EXTENDs per circuit, the relay-to-relay links reused from
// the link pool after the first circuit.
func BenchmarkCircuitBuild(b *testing.B) {
	fa := newFakeAuthority(b)
	var hops []origin.HopInfo
	var first *directory.Descriptor
	for _, nick := range []string{"r1", "r2", "r3"} {
		cfg := testConfig(b, nick, "guard")
		cfg.Authorities = fa.entry()
		n := startRelay(b, cfg)
		d := fa.descriptorOf(b, n.fp)
		if first == nil {
			first = d
		}
		hops = append(hops, hopInfoOf(d))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	conn, err := tcp.Dialer{}.DialContext(ctx, first.Transports[0].Addr)
	if err != nil {
		b.Fatal(err)
	}
	lc, err := link.Dial(ctx, conn, link.DialConfig{ExpectFingerprint: first.Fingerprint(), ExpectLinkKey: first.LinkKey})
	if err != nil {
		b.Fatal(err)
	}
	mux := origin.NewMux(lc, nil)
	defer mux.Close()
	b.ResetTimer()
	for b.Loop() {
		c, err := mux.Build(ctx, hops, origin.Options{})
		if err != nil {
			b.Fatal(err)
		}
		c.Destroy()
	}
}
