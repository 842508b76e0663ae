package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/unfed/unfed/client/openai"
	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/relay/cell"
	"github.com/unfed/unfed/relay/hop"
	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/relay/link"
	"github.com/unfed/unfed/relay/origin"
	"github.com/unfed/unfed/relay/verify"
)

// fakeClock is a settable clock for relayState.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func fpOf(n int) keys.Fingerprint {
	var fp keys.Fingerprint
	fp[0], fp[19] = 0xee, byte(n)
	return fp
}

// TestBusyBackoff: a relay at capacity is left out for 1 s, then 2 s, then
// 4 s at most, each with up to half again at random; refusals while a
// back-off runs do not lengthen it; a relay that takes a session, or one not
// refused for busyForget, starts again at 1 s.
func TestBusyBackoff(t *testing.T) {
	clk := newFakeClock()
	s := newRelayState(clk.now)
	fp := fpOf(1)
	within := func(d, base time.Duration) {
		t.Helper()
		if d < base || d > base+base/2 {
			t.Fatalf("back-off %v outside [%v, %v]", d, base, base+base/2)
		}
	}
	for _, base := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second} {
		d := s.markBusy(fp)
		within(d, base)
		// Refusals of requests sent before the back-off began.
		clk.advance(d / 2)
		if again := s.markBusy(fp); again != d-d/2 {
			t.Fatalf("a refusal during the back-off changed it: %v left, want %v", again, d-d/2)
		}
		busy, first := s.busyNow()
		if !slices.Equal(busy, []keys.Fingerprint{fp}) || !first.Equal(clk.now().Add(d-d/2)) {
			t.Fatalf("busy %v until %v", busy, first)
		}
		clk.advance(d - d/2)
		if busy, _ := s.busyNow(); len(busy) != 0 {
			t.Fatalf("still busy after its back-off: %v", busy)
		}
	}
	s.accepted(fp)
	within(s.markBusy(fp), time.Second)
	clk.advance(time.Minute)
	s.markBusy(fp)
	clk.advance(time.Hour)
	within(s.markBusy(fp), time.Second)
}

// TestFaultsPerIsolationKey: a fault steers the paths of the isolation key
// whose circuit met it and no other, for faultFor at most, and ends at once
// when the consensus lists a newer descriptor of the relay (it restarted).
func TestFaultsPerIsolationKey(t *testing.T) {
	clk := newFakeClock()
	s := newRelayState(clk.now)
	r := directory.RouterStatus{Fingerprint: fpOf(7), Published: clk.now().Add(-time.Hour)}
	c := &directory.Consensus{Relays: []directory.RouterStatus{r}}
	s.markFault("alice", r.Fingerprint)
	if got := s.faultsFor("alice", c); !slices.Equal(got, []keys.Fingerprint{r.Fingerprint}) {
		t.Fatalf("alice avoids %v", got)
	}
	if got := s.faultsFor("bob", c); len(got) != 0 {
		t.Fatalf("bob avoids %v: faults crossed isolation keys", got)
	}
	clk.advance(faultFor)
	if got := s.faultsFor("alice", c); len(got) != 0 {
		t.Fatalf("a fault outlived faultFor: %v", got)
	}
	s.markFault("alice", r.Fingerprint)
	// The descriptor a relay published just before it died is newer than
	// the one listed when it failed, but not newer than the failure.
	dying := r
	dying.Published = clk.now().Add(-time.Second)
	if got := s.faultsFor("alice", &directory.Consensus{Relays: []directory.RouterStatus{dying}}); len(got) != 1 {
		t.Fatalf("a relay that died is no longer avoided: %v", got)
	}
	clk.advance(time.Second)
	restarted := r
	restarted.Published = clk.now()
	c2 := &directory.Consensus{Relays: []directory.RouterStatus{restarted}}
	if got := s.faultsFor("alice", c2); len(got) != 0 {
		t.Fatalf("a restarted relay (a descriptor published after it failed) is still avoided: %v", got)
	}
	// A relay the consensus no longer lists keeps its fault until it
	// expires.
	s.markFault("alice", r.Fingerprint)
	if got := s.faultsFor("alice", &directory.Consensus{}); len(got) != 1 {
		t.Fatalf("fault of an unlisted relay: %v", got)
	}
}

// TestFaultKeysBounded: at most maxFaultKeys isolation keys keep faults;
// the oldest go first.
func TestFaultKeysBounded(t *testing.T) {
	clk := newFakeClock()
	s := newRelayState(clk.now)
	r := &directory.RouterStatus{Fingerprint: fpOf(1)}
	c := &directory.Consensus{Relays: []directory.RouterStatus{*r}}
	for i := range maxFaultKeys + 10 {
		clk.advance(time.Millisecond)
		s.markFault(fmt.Sprint("key", i), r.Fingerprint)
	}
	if len(s.faults) > maxFaultKeys {
		t.Fatalf("%d keys kept", len(s.faults))
	}
	if len(s.faultsFor("key0", c)) != 0 || len(s.faultsFor(fmt.Sprint("key", maxFaultKeys+9), c)) != 1 {
		t.Fatal("the oldest keys were not the ones dropped")
	}
}

// TestAdmission: max_concurrent generations run, max_queued wait at most
// the queue timeout, and the rest get a 429 at once, all with Retry-After.
func TestAdmission(t *testing.T) {
	a := newAdmission(1, 1)
	ctx := context.Background()
	release, err := a.acquire(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	waiting := make(chan struct{})
	go func() {
		close(waiting)
		rel, err := a.acquire(ctx, time.Minute)
		if err == nil {
			rel()
		}
		got <- err
	}()
	<-waiting
	// Wait until the second request is queued, then a third finds the
	// queue full.
	for {
		a.mu.Lock()
		n := a.waiting
		a.mu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	_, err = a.acquire(ctx, time.Minute)
	var rl *openai.RateLimitError
	if !errors.As(err, &rl) || !errors.Is(err, openai.ErrRateLimited) || rl.RetryAfter <= 0 {
		t.Fatalf("queue full: %v", err)
	}
	release()
	if err := <-got; err != nil {
		t.Fatalf("queued request: %v", err)
	}
	// A queued request that gets no slot within the timeout is refused.
	release, _ = a.acquire(ctx, time.Minute)
	defer release()
	if _, err := a.acquire(ctx, time.Millisecond); !errors.As(err, &rl) {
		t.Fatalf("queue timeout: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := a.acquire(cctx, time.Minute); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled while queued: %v", err)
	}
	var none *admission
	if rel, err := none.acquire(ctx, 0); err != nil {
		t.Fatal(err)
	} else {
		rel()
	}
}

// confFixture is a consensus of one guard, dealers and parties of one stage
// [0, 2) of model "m", each on its own /16.
func confFixture(parties, dealers int) (*directory.Consensus, map[string]*directory.RouterStatus) {
	var rs []directory.RouterStatus
	add := func(n int, f func(r *directory.RouterStatus)) {
		r := directory.RouterStatus{Fingerprint: fpOf(n), Published: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
			Transports: []directory.Transport{{Name: "tcp", Addr: fmt.Sprintf("10.%d.0.1:9001", n)}},
			Flags:      []directory.Flag{directory.FlagRunning, directory.FlagValid}, Capacity: directory.Capacity{Sessions: 10}}
		f(&r)
		rs = append(rs, r)
	}
	add(1, func(r *directory.RouterStatus) {
		r.Flags = append(r.Flags, directory.FlagGuard, directory.FlagStable)
		r.Roles = []directory.Role{directory.RoleGuard}
	})
	for i := range parties {
		add(10+i, func(r *directory.RouterStatus) {
			r.Flags = append(r.Flags, directory.FlagMPC)
			r.Roles = []directory.Role{directory.RoleMPC}
			r.MPC = &directory.MPCInfo{Model: "m", Layers: directory.LayerRange{First: 0, Last: 2}}
		})
	}
	for i := range dealers {
		add(30+i, func(r *directory.RouterStatus) {
			r.Flags = append(r.Flags, directory.FlagDealer)
			r.Roles = []directory.Role{directory.RoleDealer}
			r.Dealer = &directory.DealerInfo{Model: "m"}
		})
	}
	c := &directory.Consensus{Relays: rs, Models: []directory.Model{{ID: "m", Layers: 2}}}
	names := map[string]*directory.RouterStatus{}
	for i := range c.Relays {
		r := &c.Relays[i]
		switch {
		case r.Fingerprint[19] == 1:
			names["guard"] = r
		case r.Fingerprint[19] >= 30:
			names[fmt.Sprint("d", r.Fingerprint[19]-30)] = r
		default:
			names[fmt.Sprint("p", r.Fingerprint[19]-10)] = r
		}
	}
	return c, names
}

func testBackend(t *testing.T, clk *fakeClock) *backend {
	t.Helper()
	g, err := LoadGuards(t.TempDir(), DefaultGuardConfig(), clk.now)
	if err != nil {
		t.Fatal(err)
	}
	return &backend{guards: g, relays: newRelayState(clk.now), log: slog.New(slog.DiscardHandler),
		rng: rand.New(rand.NewPCG(1, 2))}
}

func pathHas(p *Path, r *directory.RouterStatus) bool {
	return slices.ContainsFunc(p.Hops, func(h *directory.RouterStatus) bool { return h.Fingerprint == r.Fingerprint })
}

// TestChoosePathCapacity: paths leave busy relays out; when every path
// needs one, choosePath says how long to wait instead of failing; the model
// stays servable (a path exists in the consensus) throughout.
func TestChoosePathCapacity(t *testing.T) {
	clk := newFakeClock()
	b := testBackend(t, clk)
	c, r := confFixture(3, 1)
	g := &generation{mode: ModeConfidential, req: openai.GenerateRequest{Isolation: "k"}}
	m := &c.Models[0]
	b.relays.markBusy(r["p0"].Fingerprint)
	for range 30 {
		p, _, err := b.choosePath(c, m, g)
		if err != nil || pathHas(p, r["p0"]) {
			t.Fatalf("path %v, %v: want one without the busy party", p, err)
		}
	}
	d := b.relays.markBusy(r["p1"].Fingerprint)
	_, _, err := b.choosePath(c, m, g)
	var be *busyError
	if !errors.As(err, &be) || be.until.After(clk.now().Add(d)) || !be.until.After(clk.now()) {
		t.Fatalf("two of three parties busy: %v, want a wait of at most %v", err, d)
	}
	if _, err := b.selectPath(c, m, ModeConfidential, nil); err != nil {
		t.Fatalf("the model is not servable while relays are busy: %v", err)
	}
	clk.advance(busyMax * 2)
	if _, _, err := b.choosePath(c, m, g); err != nil {
		t.Fatalf("after the back-offs: %v", err)
	}
	// A relay the generation found gone is never chosen again by it, even
	// when that leaves no path: then there is nothing to wait for.
	g.gone = []keys.Fingerprint{r["p2"].Fingerprint}
	for range 30 {
		if p, _, err := b.choosePath(c, m, g); err != nil || pathHas(p, r["p2"]) {
			t.Fatalf("path %v, %v: want one without the relay found gone", p, err)
		}
	}
	b.relays.markBusy(r["p0"].Fingerprint)
	if _, _, err := b.choosePath(c, m, g); !errors.As(err, &be) {
		t.Fatalf("p2 gone, p0 busy: %v, want a wait for p0", err)
	}
	// A busy guard is waited for, not replaced.
	clk.advance(busyMax * 2)
	d = b.relays.markBusy(r["guard"].Fingerprint)
	if _, _, err := b.choosePath(c, m, g); !errors.As(err, &be) || !be.until.Equal(clk.now().Add(d)) {
		t.Fatalf("guard busy: %v, want a wait of %v", err, d)
	}
	clk.advance(d)
	g.gone = append(g.gone, r["p1"].Fingerprint)
	if _, _, err := b.choosePath(c, m, g); !errors.Is(err, ErrNoPath) || errors.As(err, &be) {
		t.Fatalf("two of three parties gone: %v, want no path", err)
	}
}

// TestChoosePathFaults: a fault steers its isolation key's paths away from
// the relay while another path exists, and a path through it is still
// chosen when none does; other keys are not steered.
func TestChoosePathFaults(t *testing.T) {
	clk := newFakeClock()
	b := testBackend(t, clk)
	c, r := confFixture(3, 1)
	m := &c.Models[0]
	alice := &generation{mode: ModeConfidential, req: openai.GenerateRequest{Isolation: "alice"}}
	bob := &generation{mode: ModeConfidential, req: openai.GenerateRequest{Isolation: "bob"}}
	b.relays.markFault("alice", r["p2"].Fingerprint)
	sawBob := false
	for range 40 {
		p, _, err := b.choosePath(c, m, alice)
		if err != nil || pathHas(p, r["p2"]) {
			t.Fatalf("alice: %v, %v: want a path without p2", p, err)
		}
		p, _, err = b.choosePath(c, m, bob)
		if err != nil {
			t.Fatal(err)
		}
		sawBob = sawBob || pathHas(p, r["p2"])
	}
	if !sawBob {
		t.Fatal("bob never used p2: alice's fault steered bob's paths")
	}
	// p0 busy: the only path left goes through p2, which alice still takes.
	b.relays.markBusy(r["p0"].Fingerprint)
	p, _, err := b.choosePath(c, m, alice)
	if err != nil || !pathHas(p, r["p2"]) {
		t.Fatalf("alice with p0 busy: %v, %v: want the path through p2", p, err)
	}
	// Suspects of the generation are preferences too.
	alice.suspects = []keys.Fingerprint{r["p1"].Fingerprint}
	if p, _, err := b.choosePath(c, m, alice); err != nil || !pathHas(p, r["p1"]) || !pathHas(p, r["p2"]) {
		t.Fatalf("alice with a suspect: %v, %v", p, err)
	}
}

// TestChoosePathKeepsNewestFaults: when no path avoids every fault of an
// isolation key, the path avoids the newest ones it can (a relay pinned by
// the latest failure stays out while older faults give way), not none; and
// of two relays blamed at one moment (either lied), one is left out.
func TestChoosePathKeepsNewestFaults(t *testing.T) {
	clk := newFakeClock()
	b := testBackend(t, clk)
	c, r := confFixture(3, 2)
	m := &c.Models[0]
	g := &generation{mode: ModeConfidential, req: openai.GenerateRequest{Isolation: "k"}}
	// p0 busy: every path holds p1 and p2. p2 failed a while ago, d0 now.
	b.relays.markBusy(r["p0"].Fingerprint)
	b.relays.markFault("k", r["p2"].Fingerprint)
	clk.advance(time.Second)
	b.relays.markFault("k", r["d0"].Fingerprint)
	if got := b.relays.faultsFor("k", c); !slices.Equal(got, []keys.Fingerprint{r["d0"].Fingerprint, r["p2"].Fingerprint}) {
		t.Fatalf("faults %v, want d0 (newest), then p2", got)
	}
	for range 40 {
		p, _, err := b.choosePath(c, m, g)
		if err != nil || pathHas(p, r["d0"]) || !pathHas(p, r["p2"]) {
			t.Fatalf("path %v, %v: want one through p2 (the older fault) that leaves d0 (the newest) out", p, err)
		}
	}
	// Blamed together (a PartyMismatch pins both signers): p1 and d1, with
	// p0 busy. No path avoids both; each path leaves one of them out.
	clk.advance(2 * faultFor)
	b.relays.markBusy(r["p0"].Fingerprint)
	b.relays.markFault("k", r["p1"].Fingerprint)
	b.relays.markFault("k", r["d1"].Fingerprint)
	for range 40 {
		p, _, err := b.choosePath(c, m, g)
		if err != nil || pathHas(p, r["p1"]) && pathHas(p, r["d1"]) {
			t.Fatalf("path %v, %v: want one without p1 or without d1", p, err)
		}
	}
}

// TestClassify: capacity refusals are told from faults and pinned on what
// the error names.
func TestClassify(t *testing.T) {
	c, r := confFixture(2, 1)
	p := &Path{Mode: ModeConfidential, Hops: []*directory.RouterStatus{r["guard"], r["d0"], r["p0"], r["p1"]},
		Stages: []Stage{{Range: directory.LayerRange{First: 0, Last: 2}, Dealer: r["d0"], A: r["p0"], B: r["p1"]}}}
	_ = c
	at := func(rs *directory.RouterStatus, err error) error {
		return &hopFailure{Relay: rs.Fingerprint, Err: fmt.Errorf("client: hop: %w", err)}
	}
	far := func(err error) error { return &hopFailure{Err: fmt.Errorf("client: circuit: %w", err)} }
	cases := []struct {
		name     string
		err      error
		capacity bool
		relays   []*directory.RouterStatus
		guard    bool
	}{
		{"out-of-capacity", at(r["p1"], &hop.Error{Code: hop.CodeCapacity, Reason: "no party session free"}), true, []*directory.RouterStatus{r["p1"]}, false},
		{"extend refused for limits", at(r["p0"], &origin.ExtendError{Hop: 1, Reason: cell.ReasonResourceLimit}), true, []*directory.RouterStatus{r["p0"]}, false},
		{"destroyed for limits", far(&origin.DestroyedError{Reason: cell.ReasonResourceLimit, Remote: true}), true, nil, false},
		{"guard out of capacity", &hopFailure{Relay: r["guard"].Fingerprint, Guard: true, Err: &hop.Error{Code: hop.CodeCapacity}}, true, nil, false},
		{"mpc-failure", at(r["p1"], &hop.Error{Code: hop.CodeMPCFailure}), false, []*directory.RouterStatus{r["d0"], r["p0"], r["p1"]}, false},
		{"bad-message", at(r["p0"], &hop.Error{Code: hop.CodeBadMessage}), false, []*directory.RouterStatus{r["p0"]}, false},
		{"edge-auth", at(r["p1"], &hop.Error{Code: hop.CodeEdgeAuth}), false, []*directory.RouterStatus{r["p1"]}, false},
		{"internal", at(r["d0"], &hop.Error{Code: hop.CodeInternal}), false, []*directory.RouterStatus{r["d0"]}, false},
		{"unreachable", at(r["p0"], &origin.ExtendError{Hop: 1, Reason: cell.ReasonConnectFailed}), false, []*directory.RouterStatus{r["p0"]}, false},
		{"unexpected reply", at(r["p0"], errors.New("sent an unexpected LOGITS")), false, []*directory.RouterStatus{r["p0"]}, false},
		{"party commitments disagree", &hopFailure{Relay: r["p1"].Fingerprint, Also: r["d0"].Fingerprint,
			Err: fmt.Errorf("client: %w", &verify.PartyMismatch{Role: verify.PartyB, Sender: verify.Dealer})}, false,
			[]*directory.RouterStatus{r["p1"], r["d0"]}, false},
		{"destroyed", far(&origin.DestroyedError{Reason: cell.ReasonLinkClosed, Remote: true}), false, nil, false},
		{"timeout", far(context.DeadlineExceeded), false, nil, false},
		{"guard link", &hopFailure{Relay: r["guard"].Fingerprint, Guard: true, Err: errors.New("client: dial guard: refused")}, false, nil, true},
		{"guard handshake", &hopFailure{Relay: r["guard"].Fingerprint, Guard: true,
			Err: fmt.Errorf("client: guard link: %w", fmt.Errorf("%w: message 2: bad tag", link.ErrHandshake))}, false, nil, true},
		{"guard refused a link", &hopFailure{Relay: r["guard"].Fingerprint, Guard: true,
			Err: fmt.Errorf("client: guard link: %w", fmt.Errorf("%w: %w", link.ErrHandshake, io.EOF))}, true, []*directory.RouterStatus{r["guard"]}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := classify(tc.err, p)
			if f.capacity != tc.capacity || !slices.Equal(f.relays, tc.relays) || (f.guard != nil) != tc.guard || f.cause == "" ||
				f.unreachable != (tc.name == "unreachable") ||
				// Unproven which of the extending hop (d0) and its target
				// lied or failed: the extender is blamed too.
				(tc.name == "unreachable") != (f.extender == r["d0"]) {
				t.Fatalf("classify = %+v, want capacity %v relays %v guard %v", f, tc.capacity, tc.relays, tc.guard)
			}
		})
	}
}
