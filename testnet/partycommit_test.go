package testnet

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/unfed/unfed/relay/keys"
)

// TestConfidentialTamperDetected (issue 17, spec/11 §7, real processes): a
// dealer of a confidential testnet runs the fault-injection build and
// alters every PREP after committing to it. The client's crosswise check of
// the dealers' and parties' commitments catches the first step of every
// circuit through it, before the step's output is used: the circuit is torn
// down, the dealer (and the party it dealt to) avoided by the request's
// next circuit, and every completion equals local greedy decoding.
func TestConfidentialTamperDetected(t *testing.T) {
	buildCheat(t)
	n := startNetwork(t, Spec{Parties: 3, Dealers: 3, Cheater: "d1", CheatTamper: true})
	api, _, _ := n.ClientAddrs()
	const tokens = 8
	want := localGreedy(t, n.Spec.Model, e2ePrompt, tokens)
	cheater := n.Node("d1").Fingerprint
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	// A request's retries can avoid d1 only if its client knows the other
	// two dealers: a first consensus that missed a relay started last (d3)
	// left d1 in every two-stage path, and the request failed (CI,
	// 8 December).
	if err := waitClientListsAll(ctx, n); err != nil {
		t.Fatal(err)
	}
	clientLog := filepath.Join(n.Node("client").Dir, "stderr.log")
	detected := func() int {
		b, _ := os.ReadFile(clientLog)
		return strings.Count(string(b), "commitments of a confidential step disagree")
	}
	through := func(hops []CircuitHop) bool {
		for _, h := range hops {
			if h.Fingerprint == cheater {
				return true
			}
		}
		return false
	}
	// A circuit takes two of the three dealers: within a few completions
	// one goes through d1.
	for i := 0; i < 8 && detected() == 0; i++ {
		got, err := StreamCompletion(ctx, api, CompletionRequest{Prompt: e2ePrompt, MaxTokens: tokens}, io.Discard)
		if err != nil {
			dumpLogs(t, n)
			t.Fatalf("completion %d: %v", i, err)
		}
		if got != want {
			t.Fatalf("completion %d = %q, local %q", i, got, want)
		}
	}
	// One more after the detection: every completion stays correct.
	got, err := StreamCompletion(ctx, api, CompletionRequest{Prompt: e2ePrompt, MaxTokens: tokens}, io.Discard)
	if err != nil || got != want {
		t.Fatalf("completion after the detection: %q, %v; want %q", got, err, want)
	}
	circs, err := ClientCircuits(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	usedCheater := 0
	for _, c := range circs {
		if through(c) {
			usedCheater++
		}
	}
	// Every circuit through the tampering dealer was caught by the
	// commitments (and none completed a step through it). Faults are
	// remembered per isolation key (client/relaystate.go), so another
	// request may try it again, and is caught again.
	t.Logf("%d circuits, %d through the tampering dealer, %d detections", len(circs), usedCheater, detected())
	if usedCheater == 0 || detected() != usedCheater {
		dumpLogs(t, n)
		t.Fatalf("%d circuits through the tampering dealer, %d detections", usedCheater, detected())
	}
}

// TestConfidentialMiscomputeFlagged (issue 17, spec/11 §7.4–7.5, real
// processes): a party of stage 1 runs the fault-injection build and alters
// its output share of every step after computing it, committing to what it
// sends, so every crosswise check of the client passes. The client audits
// every party (verify-fraction 1000), gathers each audited party's view
// from the relays around it (PARTY_REVEAL), and submits party tickets to
// the verifier, which re-executes the party's side, finds the cheater's
// outputs differ and proves it to the authorities: the consensus flags the
// cheater BadCompute, and later circuits avoid it, their completions equal
// to local greedy decoding. Tickets are windowed (spec/11 §7.4): the
// verifier takes them at its default limit, and checks every one.
func TestConfidentialMiscomputeFlagged(t *testing.T) {
	buildCheat(t)
	n := startNetworkPatched(t, Spec{Parties: 3, Verifiers: 1, VerifyFraction: 1000, TicketDelay: -1,
		Cheater: "p1-1", CheatMiscompute: true}, func(node *Node, cfg map[string]any) {
		if node.Role == "verifier" {
			// The verifier's default ticket limit (16 MiB): windowed party
			// tickets are chosen to fit 8 MiB (spec 11 §7.4).
			section(cfg, "log")["level"] = "debug"
		}
		if node.Role == "client" {
			section(cfg, "log")["level"] = "debug" // "party ticket gathered", with its window
		}
	})
	api, _, _ := n.ClientAddrs()
	const tokens = 8
	want := localGreedy(t, n.Spec.Model, e2ePrompt, tokens)
	cheater := n.Node("p1-1").Fingerprint
	fp, err := keys.ParseFingerprint(cheater)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	waitVerifierListed(ctx, t, n)
	watch := watchBadCompute(ctx, n, fp)
	runs, through, firstUse := completeUntilFlagged(ctx, t, n, api, cheater, tokens, watch, 500*time.Millisecond,
		func(runs, through int) bool { return runs >= 20 }, func() { dumpLogs(t, n) })
	logOf := func(name string) string {
		b, _ := os.ReadFile(filepath.Join(n.Node(name).Dir, "stderr.log"))
		return string(b)
	}
	v, c := logOf("v1"), logOf("client")
	t.Logf("flagged BadCompute %.1f s after the first completion through the cheater; %d completions, %d through it; "+
		"verifier: %d party tickets checked, %d fraud proofs sent; client: %d gatherings failed",
		watch.at().Sub(firstUse).Seconds(), runs, through, strings.Count(v, "party ticket checked"),
		strings.Count(v, "a party's re-execution differs"), strings.Count(c, "party audit views not gathered"))
	// Windowed tickets (spec 11 §7.4): those whose window starts after
	// step 0 carry state rows revealed by the other party and the dealer.
	windowed := 0
	for _, l := range strings.Split(c, "\n") {
		if strings.Contains(l, "party ticket gathered") && !strings.Contains(l, "window=0") {
			windowed++
		}
	}
	t.Logf("client: %d party tickets gathered, %d with a window after step 0", strings.Count(c, "party ticket gathered"), windowed)
	for _, l := range strings.Split(v, "\n") {
		if strings.Contains(l, "party ticket checked") && !strings.Contains(l, "err=<nil>") {
			t.Errorf("the verifier could not check a party ticket: %s", l)
		}
	}
	if strings.Count(c, "party audit views not gathered") != 0 {
		t.Errorf("the client failed to gather a party's view")
	}
	// The client fetches the consensus that flags it, then avoids it.
	waitCtx(ctx, n.Spec.Interval+time.Second)
	for i := range 2 {
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
			t.Fatalf("completion %d after the flag = %q, local %q", i, got, want)
		}
	}
}

// waitClientListsAll waits until the client's consensus lists every relay
// of n (bridges aside) Running, by its consensus_running_relays gauge.
func waitClientListsAll(ctx context.Context, n *Network) error {
	want := 0
	for _, node := range n.Nodes {
		if node.Kind == "relay" && node.Role != "bridge" {
			want++
		}
	}
	var got float64
	for {
		if m, err := Metrics(ctx, n.Node("client")); err == nil {
			if got = m["unfed_client_consensus_running_relays"]; int(got) >= want {
				return nil
			}
		}
		if !waitCtx(ctx, 250*time.Millisecond) {
			return fmt.Errorf("the client's consensus lists %v of %d relays Running", got, want)
		}
	}
}
