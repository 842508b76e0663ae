package directory_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/unfed/unfed/directory"
)

// TestVerifierRole: a verifier's descriptor carries the verifier line,
// parses back, and a consensus entry of it keeps the role and the line
// (spec/04 §3.1, §5; spec/11 §3.5), so clients find verifiers of a model.
func TestVerifierRole(t *testing.T) {
	r := newRelay(t, "verifier", directory.RoleGuard, directory.RoleVerifier)
	r.Desc.Verifier = &directory.VerifierInfo{Model: testModel.ID}
	b, err := r.Sign(t0)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte("\nroles guard verifier\n")) || !bytes.Contains(b, []byte("\nverifier "+testModel.ID+"\n")) {
		t.Fatalf("document:\n%s", b)
	}
	d, err := directory.ParseDescriptor(b, t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if !d.HasRole(directory.RoleVerifier) || d.Verifier == nil || d.Verifier.Model != testModel.ID {
		t.Fatalf("parsed %+v %+v", d.Roles, d.Verifier)
	}
	signers, set := offlineAuthorities(t, 3, false)
	va := t0.Truncate(time.Hour).Add(time.Hour)
	var votes []*directory.Vote
	for _, s := range signers {
		votes = append(votes, offlineVote(t, s, set, va, nil, statusOf(t, r, directory.FlagRunning, directory.FlagValid)))
	}
	c, err := directory.ComputeConsensus(votes, set)
	if err != nil {
		t.Fatal(err)
	}
	c = signAll(t, c, signers...)
	u, err := directory.ParseConsensus(c.Raw())
	if err != nil {
		t.Fatal(err)
	}
	got, err := u.Verify(set, va.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	e := got.Relays[0]
	if !e.HasRole(directory.RoleVerifier) || e.Verifier == nil || e.Verifier.Model != testModel.ID {
		t.Fatalf("consensus entry %+v %+v", e.Roles, e.Verifier)
	}
}
