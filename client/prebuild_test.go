package client

import (
	"context"
	"log/slog"
	"testing"
)

// TestDialerClosedRefusesFactories: a spare circuit still being built when
// the client stops asks a closed dialer for a transport; it gets an error,
// not a panic (it used to write to the dialer's nil factory map).
func TestDialerClosedRefusesFactories(t *testing.T) {
	d := newDialer("tcp", slog.New(slog.DiscardHandler))
	if _, err := d.factory(context.Background(), "tcp"); err != nil {
		t.Fatalf("open dialer: %v", err)
	}
	d.close()
	if _, err := d.factory(context.Background(), "tcp"); err == nil {
		t.Fatal("a closed dialer handed out a transport factory")
	}
}

// TestSparesClosedStartNoBuilder: once the spares are closed, refill starts
// no builder.
func TestSparesClosedStartNoBuilder(t *testing.T) {
	var b backend
	b.spares.close()
	b.refill(context.Background(), &localModel{id: "m"}, ModeConfidential)
	b.spares.mu.Lock()
	defer b.spares.mu.Unlock()
	if len(b.spares.building) != 0 {
		t.Fatalf("refill started a builder after close: %v", b.spares.building)
	}
}
