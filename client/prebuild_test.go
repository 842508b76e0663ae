package client

import (
	"context"
	"log/slog"
	"testing"
	"time"
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

// TestSpareAtStart: a client builds a circuit for its local model before
// any request (as Tor builds circuits ahead of need), and its first request
// runs on it: no circuit is built on demand.
func TestSpareAtStart(t *testing.T) {
	n := sharedNet(t)
	n.settle(t)
	rc := startClient(t, n, t.TempDir(), func(c *Config) {
		c.Circuit.Mode = string(ModeAnonymous)
		c.Metrics.Listen = "127.0.0.1:0"
	})
	count := func(series string) float64 { return seriesOrZero(t, scrape(t, rc.metrics), series) }
	deadline := time.Now().Add(30 * time.Second)
	for count(`unfed_client_circuit_builds_total{mode="anonymous",when="ahead"}`) < 1 {
		if time.Now().After(deadline) {
			t.Fatal("no circuit built ahead of the first request within 30 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	want := localGreedy(t, n.modelPath, 4)
	if got := rc.complete(t, n.modelID, 4); got != want {
		t.Fatalf("generated %q, local %q", got, want)
	}
	if got := count(`unfed_client_circuit_builds_total{mode="anonymous",when="on_demand"}`); got != 0 {
		t.Fatalf("%v circuits built on demand: the first request did not take the circuit built at start", got)
	}
}

// TestRequestWaitsForPendingSpare: a request that finds the spare for its
// model still being built waits for it rather than building a circuit of
// its own (it has a head start): with the client's first spare held back
// until the request has come, the request runs on that spare and nothing
// is built on demand.
func TestRequestWaitsForPendingSpare(t *testing.T) {
	n := sharedNet(t)
	n.settle(t)
	gate, atGate := make(chan struct{}), make(chan struct{}, 1)
	testSpareGate, testSpareAtGate = gate, atGate
	rc := startClient(t, n, t.TempDir(), func(c *Config) {
		c.Circuit.Mode = string(ModeAnonymous)
		c.Metrics.Listen = "127.0.0.1:0"
	})
	testSpareGate, testSpareAtGate = nil, nil
	want := localGreedy(t, n.modelPath, 4)
	// The spare is being built (held at the gate) before the request comes.
	select {
	case <-atGate:
	case <-time.After(30 * time.Second):
		t.Fatal("no spare build started within 30 s")
	}
	// Let the request reach the spare being built, then let the build go.
	go func() {
		time.Sleep(300 * time.Millisecond)
		close(gate)
	}()
	if got := rc.complete(t, n.modelID, 4); got != want {
		t.Fatalf("generated %q, local %q", got, want)
	}
	count := func(series string) float64 { return seriesOrZero(t, scrape(t, rc.metrics), series) }
	if od := count(`unfed_client_circuit_builds_total{mode="anonymous",when="on_demand"}`); od != 0 {
		t.Fatalf("%v circuits built on demand while the spare was being built\n%s", od, scrape(t, rc.metrics))
	}
	if ah := count(`unfed_client_circuit_builds_total{mode="anonymous",when="ahead"}`); ah < 1 {
		t.Fatalf("%v circuits built ahead", ah)
	}
}
