package client

import (
	"testing"

	"github.com/unfed/unfed/relay/verify"
)

// TestAuditDraws: a session's hops are drawn once, at its start, with the
// given probability; an audited hop keeps its latest step's commitment
// (whose chains bind the whole session), an unaudited one none; p ≤ 0
// audits nothing.
func TestAuditDraws(t *testing.T) {
	if newAuditState(0, 3, 4, func() int { return 0 }) != nil {
		t.Fatal("p = 0 audits")
	}
	draws := []int{10, 500, 499}
	a := newAuditState(500, 3, 4, func() int { d := draws[0]; draws = draws[1:]; return d })
	if a.picked[0] != true || a.picked[1] != false || a.picked[2] != true {
		t.Fatalf("picked %v, want [true false true]", a.picked)
	}
	for pos := range 3 {
		a.step([]*verify.Commitment{{Start: pos, Count: 1}, {Start: pos, Count: 1}, {Start: pos, Count: 1}})
	}
	if a.last[0] == nil || a.last[0].Start != 2 || a.last[1] != nil || a.last[2] == nil || a.last[2].Start != 2 || len(a.starts) != 3 {
		t.Fatalf("kept %v, %d starts", a.last, len(a.starts))
	}
	for range 1000 {
		if d := cryptoDraw(); d < 0 || d >= 1000 {
			t.Fatalf("draw %d", d)
		}
	}
}

// TestSubmitterQueueBound: at most maxQueuedTickets wait; the oldest are
// dropped first.
func TestSubmitterQueueBound(t *testing.T) {
	u := newSubmitter(&backend{}, -1)
	var ts []*verify.Ticket
	for i := range maxQueuedTickets + 10 {
		ts = append(ts, &verify.Ticket{Dim: i})
	}
	var first, rest []ticket
	for i, tk := range ts {
		if i < 100 {
			first = append(first, tk)
		} else {
			rest = append(rest, tk)
		}
	}
	u.add("m", first...)
	u.add("m", rest...)
	if u.n != maxQueuedTickets || len(u.queue["m"]) != maxQueuedTickets || u.queue["m"][0].(*verify.Ticket).Dim != 10 {
		t.Fatalf("%d queued, first %d", u.n, u.queue["m"][0].(*verify.Ticket).Dim)
	}
}
