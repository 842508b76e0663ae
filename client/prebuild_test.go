package client

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"sync"
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

// TestSpareAtFirstConsensus: the circuit built at start is begun as soon
// as the first consensus is installed, not at the next retry of the start-up
// loop: a first request sent the moment the model is listed then waits for
// a build already under way. The client's authority is behind a proxy that
// refuses until the client's first fetch has failed (so the start-up loop
// has found no consensus), and the retry is made an hour: the spare must
// come from the installation alone.
func TestSpareAtFirstConsensus(t *testing.T) {
	n := sharedNet(t)
	n.settle(t)
	old := startSpareRetry
	startSpareRetry = time.Hour
	// Restored after the client has stopped (cleanups run last first).
	t.Cleanup(func() { startSpareRetry = old })

	target, err := url.Parse("http://" + n.authorities[0].Address)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	var mu sync.Mutex
	refused, open := 0, false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ok := open
		if !ok {
			refused++
		}
		mu.Unlock()
		if !ok {
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer srv.Close()
	go func() {
		// Open once the client has been refused (it retries a second
		// later) and its start-up loop has had time to find nothing.
		for {
			mu.Lock()
			r := refused
			mu.Unlock()
			if r > 0 {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond)
		mu.Lock()
		open = true
		mu.Unlock()
	}()
	rc := startClient(t, n, t.TempDir(), func(c *Config) {
		c.Circuit.Mode = string(ModeAnonymous)
		c.Metrics.Listen = "127.0.0.1:0"
		c.Authorities = slices.Clone(c.Authorities) // n's are shared
		c.Authorities[0].Address = srv.Listener.Addr().String()
	})
	mu.Lock()
	if refused == 0 {
		t.Fatal("the client got its consensus without being refused first")
	}
	mu.Unlock()
	count := func(series string) float64 { return seriesOrZero(t, scrape(t, rc.metrics), series) }
	deadline := time.Now().Add(20 * time.Second)
	for count(`unfed_client_circuit_builds_total{mode="anonymous",when="ahead"}`) < 1 {
		if time.Now().After(deadline) {
			t.Fatal("no circuit built ahead within 20 s of the first consensus: the start-up loop waited for its next retry")
		}
		time.Sleep(50 * time.Millisecond)
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

// TestRefillAfterFirstToken: the spare that replaces the circuit a request
// took is built once the request's first token is out, not while its
// prompt crosses the circuit (the build's handshakes would run on the same
// relays as the prompt's passes; issue 16), and it is built.
func TestRefillAfterFirstToken(t *testing.T) {
	testRefillStartsAt(t, time.Hour, func(at []int) bool { return len(at) == 1 && at[0] >= 1 }, "one, after the first token")
}

// TestRefillAtOnceAfterSlowBuilds: once a build has taken refillAtOnce
// (0 here: every build is slow), a generation starts its replacement spare
// as it takes its circuit, before any token (spec/08 §10): over a
// wide-area circuit a build begun at the first token would make a request
// that comes soon after wait for it.
func TestRefillAtOnceAfterSlowBuilds(t *testing.T) {
	testRefillStartsAt(t, 0, func(at []int) bool { return len(at) == 1 && at[0] == 0 }, "one, before the first token")
}

// testRefillStartsAt runs one 4-token generation with refillAtOnce set to
// slow and checks when its replacement spare was started (tokens out by
// then), and that it was built.
func testRefillStartsAt(t *testing.T, slow time.Duration, ok func(at []int) bool, want string) {
	n := sharedNet(t)
	n.settle(t)
	defer func(d time.Duration) { refillAtOnce = d }(refillAtOnce)
	refillAtOnce = slow
	var mu sync.Mutex
	var at []int
	testRefillStart = func(tokens int) {
		mu.Lock()
		at = append(at, tokens)
		mu.Unlock()
	}
	defer func() { testRefillStart = nil }()
	rc := startClient(t, n, t.TempDir(), func(c *Config) {
		c.Circuit.Mode = string(ModeAnonymous)
		c.Metrics.Listen = "127.0.0.1:0"
	})
	count := func(series string) float64 { return seriesOrZero(t, scrape(t, rc.metrics), series) }
	const ahead = `unfed_client_circuit_builds_total{mode="anonymous",when="ahead"}`
	deadline := time.Now().Add(30 * time.Second)
	for count(ahead) < 1 {
		if time.Now().After(deadline) {
			t.Fatal("no circuit built ahead of the first request within 30 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	local := localGreedy(t, n.modelPath, 4)
	if got := rc.complete(t, n.modelID, 4); got != local {
		t.Fatalf("generated %q, local %q", got, local)
	}
	mu.Lock()
	got := slices.Clone(at)
	mu.Unlock()
	if !ok(got) {
		t.Fatalf("replacement spares started after %v tokens, want %s", got, want)
	}
	deadline = time.Now().Add(30 * time.Second)
	for count(ahead) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the spare the request took was not replaced")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
