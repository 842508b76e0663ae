package directory_test

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/unfed/unfed/directory"
)

// TestBadComputeConsensus: in a method-3 consensus a relay carries
// BadCompute when a majority of authorities vote it (2 of 3) and not when
// one does; when too few votes list method 3 the method-2 consensus drops
// the flag from known-flags and from every relay, so authorities of older
// code compute the same document. Both parse back.
func TestBadComputeConsensus(t *testing.T) {
	signers, set := offlineAuthorities(t, 3, false)
	va := t0.Truncate(time.Hour).Add(time.Hour)
	bad := statusOf(t, newRelay(t, "bad", directory.RoleGuard), directory.FlagRunning, directory.FlagValid)
	half := statusOf(t, newRelay(t, "half", directory.RoleGuard), directory.FlagRunning, directory.FlagValid)
	flagged := func(r directory.RouterStatus) directory.RouterStatus {
		r.Flags = append([]directory.Flag{directory.FlagBadCompute}, r.Flags...)
		return r
	}
	for _, c := range []struct {
		methods [3][]int
		method  int
	}{
		{[3][]int{{1, 2, 3}, {1, 2, 3}, {1, 2, 3}}, 3},
		{[3][]int{{1, 2, 3}, {1, 2}, {1, 2}}, 2},
	} {
		var votes []*directory.Vote
		for i, s := range signers {
			rs := []directory.RouterStatus{bad, half}
			if i < 2 {
				rs[0] = flagged(bad)
			}
			if i == 2 {
				rs[1] = flagged(half)
			}
			a := set.Lookup(s.Identity.Fingerprint())
			v := &directory.Vote{
				Authority: directory.DirSource{Name: a.Name, Fingerprint: a.Fingerprint, Address: a.Address},
				Methods:   c.methods[i], Published: va.Add(-time.Minute), ValidAfter: va, FreshUntil: va.Add(time.Hour),
				ValidUntil: va.Add(3 * time.Hour), VoteDelay: 5 * time.Minute, DistDelay: 5 * time.Minute,
				KnownFlags: directory.KnownFlags, Models: []directory.Model{testModel}, Relays: sortedStatuses(rs),
			}
			if err := s.SignVote(v); err != nil {
				t.Fatal(err)
			}
			votes = append(votes, v)
		}
		cons, err := directory.ComputeConsensus(votes, set)
		if err != nil {
			t.Fatal(err)
		}
		if cons.Method != c.method {
			t.Fatalf("method %d, want %d", cons.Method, c.method)
		}
		want := c.method >= directory.BadComputeMethod
		if slices.Contains(cons.KnownFlags, directory.FlagBadCompute) != want {
			t.Fatalf("method %d known flags %v", c.method, cons.KnownFlags)
		}
		if got := cons.Relay(bad.Fingerprint).HasFlag(directory.FlagBadCompute); got != want {
			t.Fatalf("method %d: the relay 2 of 3 voted BadCompute has it: %v", c.method, got)
		}
		if cons.Relay(half.Fingerprint).HasFlag(directory.FlagBadCompute) {
			t.Fatalf("method %d: the relay 1 of 3 voted BadCompute has it", c.method)
		}
		if _, err := directory.ParseConsensus(cons.Raw()); err != nil {
			t.Fatalf("method %d: %v", c.method, err)
		}
	}
}

func sortedStatuses(rs []directory.RouterStatus) []directory.RouterStatus {
	slices.SortFunc(rs, func(x, y directory.RouterStatus) int { return bytes.Compare(x.Fingerprint[:], y.Fingerprint[:]) })
	return rs
}
