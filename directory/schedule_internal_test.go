package directory

import (
	"testing"
	"time"
)

// TestProbeSchedule: by default the two probing phases share the room
// before the vote phase (issue 16: compute probes of distant relays need
// several round trips), never less than VoteDelay/4; an authority that
// starts late in a period still probes ahead of the vote phase with half of
// what is left per phase, and one that starts too late waits a period.
func TestProbeSchedule(t *testing.T) {
	for _, c := range []struct{ iv, vd, dd, want time.Duration }{
		{8 * time.Second, 2 * time.Second, 2 * time.Second, 1750 * time.Millisecond},
		{4 * time.Second, time.Second, time.Second, 750 * time.Millisecond},
		{4 * time.Second, 2 * time.Second, 2 * time.Second, 500 * time.Millisecond}, // no room: VD/4, probing at the vote phase
		{time.Hour, 15 * time.Minute, 15 * time.Minute, 15*time.Minute - 250*time.Millisecond},
	} {
		if got := defaultProbeTimeout(c.iv, c.vd, c.dd); got != c.want {
			t.Errorf("interval %v vote %v dist %v: probe timeout %v, want %v", c.iv, c.vd, c.dd, got, c.want)
		}
	}

	cfg := AuthorityConfig{Interval: 8 * time.Second}
	if err := cfg.normalize(); err != nil {
		t.Fatal(err)
	}
	if cfg.ProbeTimeout != 1750*time.Millisecond {
		t.Fatalf("default probe timeout %v", cfg.ProbeTimeout)
	}
	a := &Authority{cfg: cfg}
	va := time.Unix(800, 0)
	voteAt := va.Add(-4 * time.Second)
	if at := a.probeAt(va); !at.Equal(voteAt.Add(-3500 * time.Millisecond)) {
		t.Fatalf("probing starts %v before the vote phase", voteAt.Sub(at))
	}
	if p := a.phaseTimeout(va, a.probeAt(va)); p != cfg.ProbeTimeout {
		t.Fatalf("on time: phases of %v", p)
	}
	if p := a.phaseTimeout(va, voteAt.Add(-2*time.Second)); p != time.Second {
		t.Fatalf("2 s before the vote phase: phases of %v, want 1s", p)
	}
	if late := a.latestProbe(va); !late.Equal(voteAt.Add(-2 * minExchange)) {
		t.Fatalf("latest start %v before the vote phase", voteAt.Sub(late))
	}

	// No room before the vote phase: probing starts with it, as before.
	tight := AuthorityConfig{Interval: 4 * time.Second, VoteDelay: 2 * time.Second, DistDelay: 2 * time.Second}
	if err := tight.normalize(); err != nil {
		t.Fatal(err)
	}
	b := &Authority{cfg: tight}
	va = time.Unix(400, 0)
	if at, late := b.probeAt(va), b.latestProbe(va); !at.Equal(va.Add(-4*time.Second)) || !late.Equal(at) {
		t.Fatalf("no room: probing at %v, latest %v", at, late)
	}
	if p := b.phaseTimeout(va, va.Add(-4*time.Second)); p != 500*time.Millisecond {
		t.Fatalf("no room: phases of %v", p)
	}
}
