package testnet

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/relay/keys"
)

var (
	cheatOnce sync.Once
	cheatErr  error
)

// buildCheat builds the fault-injection relay (unfed-relay with -tags
// unfedcheat) next to the test binaries, once.
func buildCheat(t *testing.T) {
	t.Helper()
	cheatOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cheatErr = BuildCheat(ctx, binDir)
	})
	if cheatErr != nil {
		t.Fatal(cheatErr)
	}
}

// flagWatch polls auth1's consensus and records when it first lists fp
// BadCompute.
type flagWatch struct {
	mu      sync.Mutex
	flagged time.Time
}

func (w *flagWatch) at() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.flagged
}

func watchBadCompute(ctx context.Context, n *Network, fp keys.Fingerprint) *flagWatch {
	w := &flagWatch{}
	go func() {
		for ctx.Err() == nil {
			if c, err := authorityConsensus(ctx, n); err == nil {
				if r := c.Relay(fp); r != nil && r.HasFlag(directory.FlagBadCompute) {
					w.mu.Lock()
					w.flagged = time.Now()
					w.mu.Unlock()
					return
				}
			}
			waitCtx(ctx, 200*time.Millisecond)
		}
	}()
	return w
}

func usesRelay(hops []CircuitHop, fp string) bool {
	return slices.ContainsFunc(hops, func(h CircuitHop) bool { return h.Fingerprint == fp })
}

// TestCheatingRelayFlagged (issue 17): one compute relay of a real-process
// testnet runs the fault-injection build and corrupts every output it
// computes (signing what it sends, so the client's chain checks pass). The
// client audits a quarter of the steps, gathers the inputs, and submits
// tickets over separate circuits to the verifier, which re-executes them,
// confirms the fraud on the portable path and sends the proof to every
// authority. The consensus flags the cheater BadCompute within two
// consensus intervals of the first completion through it; later circuits
// avoid it and their completions equal local greedy decoding.
func TestCheatingRelayFlagged(t *testing.T) {
	buildCheat(t)
	interval := 4 * time.Second
	n := startNetworkPatched(t, Spec{Mode: "anonymous", Replicas: 2, Verifiers: 1, VerifyFraction: 250,
		TicketDelay: -1, Cheater: "s1-1", CheatFraction: 1, Interval: interval}, nil)
	api, _, _ := n.ClientAddrs()
	cheater := n.Node("s1-1").Fingerprint
	fp, err := keys.ParseFingerprint(cheater)
	if err != nil {
		t.Fatal(err)
	}
	const tokens = 16
	want := localGreedy(t, n.Spec.Model, e2ePrompt, tokens)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	watch := watchBadCompute(ctx, n, fp)

	var firstUse time.Time
	runs, through := 0, 0
	for watch.at().IsZero() {
		if ctx.Err() != nil || (!firstUse.IsZero() && time.Since(firstUse) > 4*interval) {
			if c, err := authorityConsensus(ctx, n); err == nil {
				if r := c.Relay(fp); r != nil {
					t.Logf("consensus method %d, cheater's flags %v", c.Method, r.Flags)
				}
			}
			t.Fatalf("not flagged after %d completions, %d through the cheater", runs, through)
		}
		if _, err := complete(ctx, api, e2ePrompt, tokens); err != nil {
			t.Fatal(err)
		}
		runs++
		circs, err := ClientCircuits(ctx, n)
		if err != nil || len(circs) == 0 {
			t.Fatalf("client circuits: %v", err)
		}
		if usesRelay(circs[len(circs)-1], cheater) {
			through++
			if firstUse.IsZero() {
				firstUse = time.Now()
			}
		}
		waitCtx(ctx, 250*time.Millisecond)
	}
	took := watch.at().Sub(firstUse)
	t.Logf("flagged BadCompute %.1f s (%.2f intervals) after the first of %d completions through the cheater (%d in all)",
		took.Seconds(), took.Seconds()/interval.Seconds(), through, runs)
	if firstUse.IsZero() || took > 2*interval {
		t.Errorf("flagged %v after the first completion through the cheater, want within two intervals (%v)", took, 2*interval)
	}
	// The client learns the flag with its next consensus; from then on no
	// circuit uses the cheater, and completions are right.
	waitCtx(ctx, interval+time.Second)
	for i := range 4 {
		got, err := complete(ctx, api, e2ePrompt, tokens)
		if err != nil {
			t.Fatal(err)
		}
		circs, err := ClientCircuits(ctx, n)
		if err != nil || len(circs) == 0 {
			t.Fatalf("client circuits: %v", err)
		}
		if usesRelay(circs[len(circs)-1], cheater) {
			t.Fatalf("completion %d after the flag went through the cheater", i)
		}
		if got != want {
			t.Fatalf("completion %d after the flag differs from local:\ncircuit: %q\nlocal:   %q", i, got, want)
		}
	}
}
