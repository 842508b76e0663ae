package directory_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/unfed/unfed/directory"
)

// TestVerifierRole: a verifier's descriptor carries the verifier line and
// parses back; a method-4 consensus entry of it keeps the role and the
// line (spec/04 §3.1, §5, §7.3; spec/11 §3.5), so clients find verifiers of
// a model, and a method-3 consensus keeps the role and drops the line, as
// authorities of older code compute it.
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
	for _, c := range []struct {
		methods []int
		method  int
		line    bool
	}{{directory.ConsensusMethods, directory.ConsensusMethod, true}, {[]int{1, 2, 3}, 3, false}} {
		var votes []*directory.Vote
		for _, s := range signers {
			v := offlineVote(t, s, set, va, nil, statusOf(t, r, directory.FlagRunning, directory.FlagValid))
			v.Methods = c.methods
			if err := s.SignVote(v); err != nil {
				t.Fatal(err)
			}
			votes = append(votes, v)
		}
		cons, err := directory.ComputeConsensus(votes, set)
		if err != nil {
			t.Fatal(err)
		}
		cons = signAll(t, cons, signers...)
		u, err := directory.ParseConsensus(cons.Raw())
		if err != nil {
			t.Fatal(err)
		}
		got, err := u.Verify(set, va.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		e := got.Relays[0]
		// Under an older method the line is dropped (older authorities
		// ignore it) and the role kept; clients then find no verifier.
		if got.Method != c.method || !e.HasRole(directory.RoleVerifier) || (e.Verifier != nil) != c.line ||
			(c.line && e.Verifier.Model != testModel.ID) {
			t.Fatalf("method %d consensus entry %+v %+v", got.Method, e.Roles, e.Verifier)
		}
	}
}
