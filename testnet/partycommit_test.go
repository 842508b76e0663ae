package testnet

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
