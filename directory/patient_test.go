package directory_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/directory/dirtest"
	"github.com/unfed/unfed/relay/keys"
)

// slowProber answers every probe of slow after delay (an onion service Tor
// has to look up again), the others at once; with patience it is a
// PatientProber that lets the slow relay's probe outlast the phase.
type slowProber struct {
	slow     keys.Fingerprint
	delay    time.Duration
	patience time.Duration // 0: a plain Prober (the mutation)
	started  atomic.Int32  // probes of slow begun
	running  atomic.Int32  // probes of slow running now
	ended    chan struct{} // receives when a probe of slow ends
}

func (p *slowProber) Probe(ctx context.Context, d *directory.Descriptor) error {
	if d.Fingerprint() != p.slow {
		return ctx.Err()
	}
	p.started.Add(1)
	p.running.Add(1)
	defer func() {
		p.running.Add(-1)
		p.ended <- struct{}{}
	}()
	t := time.NewTimer(p.delay)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

type patientProber struct{ *slowProber }

func (p patientProber) Patience(d *directory.Descriptor) time.Duration {
	if d.Fingerprint() == p.slow {
		return p.patience
	}
	return 0
}

// acceptGuards makes n guard relays (192.0.2.1, .2, ...) from seed and has
// a accept their descriptors.
func acceptGuards(t *testing.T, a *directory.Authority, clk *clock, seed string, n int) []*dirtest.Relay {
	t.Helper()
	rnd := dirtest.Rand(seed)
	var relays []*dirtest.Relay
	for i := range n {
		r, err := dirtest.NewRelay(rnd, fmt.Sprintf("192.0.2.%d:9001", i+1), clk.Now(), directory.RoleGuard)
		if err != nil {
			t.Fatal(err)
		}
		b, err := r.Sign(clk.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.AcceptDescriptor(b); err != nil {
			t.Fatal(err)
		}
		relays = append(relays, r)
	}
	return relays
}

// TestPatientProbe: a relay whose probe takes longer than the probing phase
// (an onion service right after its relay restarted) is not Running in the
// vote of that phase, but its probe goes on in the background and the relay
// is Running in the next vote; no second probe of it starts meanwhile. With
// a plain Prober (the mutation: the probe cancelled with its phase) the
// relay is never Running.
func TestPatientProbe(t *testing.T) {
	for _, patient := range []bool{true, false} {
		name := map[bool]string{true: "patient", false: "mutation-cancelled-with-phase"}[patient]
		t.Run(name, func(t *testing.T) {
			sp := &slowProber{delay: 600 * time.Millisecond, patience: 10 * time.Second, ended: make(chan struct{}, 8)}
			var prober directory.Prober = sp
			if patient {
				prober = patientProber{sp}
			}
			a, _, _, clk := authPair(t, func(c *directory.AuthorityConfig) {
				c.Prober, c.ProbeTimeout = prober, 100*time.Millisecond
			})
			relays := acceptGuards(t, a, clk, "patient", 2)
			sp.slow = relays[1].Fingerprint()
			listed := func(va time.Time) (fast, slow bool) {
				v, err := a.BuildVote(va)
				if err != nil {
					t.Fatal(err)
				}
				for _, rs := range v.Relays {
					fast = fast || rs.Fingerprint == relays[0].Fingerprint()
					slow = slow || rs.Fingerprint == relays[1].Fingerprint()
				}
				return fast, slow
			}
			ctx := context.Background()
			va := a.NextValidAfter(clk.Now())
			a.ProbeAll(ctx, va)
			if fast, slow := listed(va); !fast || slow {
				t.Fatalf("after the first phase: fast relay listed %v, slow %v; want true, false", fast, slow)
			}
			if patient {
				// Another phase begins while the first probe still runs:
				// it starts no second one.
				a.ProbeAll(ctx, va)
				if n := sp.started.Load(); n != 1 {
					t.Fatalf("%d probes of the slow relay begun, want 1 while the first runs", n)
				}
			}
			select {
			case <-sp.ended:
			case <-time.After(5 * time.Second):
				t.Fatal("the slow probe never ended")
			}
			// The late result is recorded by the probe's goroutine right
			// after it returns; the next vote is built after that.
			deadline := time.Now().Add(5 * time.Second)
			for {
				_, slow := listed(va)
				if slow == patient {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("slow relay listed %v after its probe ended, want %v", slow, patient)
				}
				time.Sleep(10 * time.Millisecond)
			}
			if patient {
				return
			}
			// Cancelled with each phase, the slow relay never gets in.
			for range 2 {
				a.ProbeAll(ctx, va)
				<-sp.ended
				if _, slow := listed(va); slow {
					t.Fatal("a relay whose probes were all cancelled is listed")
				}
			}
		})
	}
}
