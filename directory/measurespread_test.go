package directory_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/directory/dirtest"
	"github.com/unfed/unfed/relay/keys"
)

// timedMeasurer is a dirtest.Prober that notes when each measurement began.
type timedMeasurer struct {
	dirtest.Prober
	mu    sync.Mutex
	began map[keys.Fingerprint]time.Time
}

func (m *timedMeasurer) Measure(ctx context.Context, d *directory.Descriptor) (directory.Measurement, error) {
	m.mu.Lock()
	m.began[d.Fingerprint()] = time.Now()
	m.mu.Unlock()
	return m.Prober.Measure(ctx, d)
}

// TestMeasurementsSpread: a relay the authority has measured before is
// measured no earlier than its offset into the measuring phase (spec/04
// §6.3), the offsets spread over the phase's first half and differ between
// authorities; a relay never measured is measured in the same phase. With
// the spread off (the mutation) some measurement starts before its offset.
func TestMeasurementsSpread(t *testing.T) {
	const probeTimeout = 400 * time.Millisecond
	for _, spread := range []bool{true, false} {
		name := map[bool]string{true: "spread", false: "mutation-all-at-once"}[spread]
		t.Run(name, func(t *testing.T) {
			directory.SpreadMeasurements(spread)
			defer directory.SpreadMeasurements(true)
			tm := &timedMeasurer{began: map[keys.Fingerprint]time.Time{}}
			a, b, _, clk := authPair(t, func(c *directory.AuthorityConfig) {
				c.Prober, c.ProbeTimeout = tm, probeTimeout
			})
			var fps []keys.Fingerprint
			for _, r := range acceptGuards(t, a, clk, "spread", 12) {
				tm.SetWeight(r.Fingerprint(), 100)
				fps = append(fps, r.Fingerprint())
			}
			ctx := context.Background()
			va := a.NextValidAfter(clk.Now())
			a.ProbeAll(ctx, va) // first measurements: at once
			if len(tm.began) != len(fps) {
				t.Fatalf("%d of %d relays measured in the first phase", len(tm.began), len(fps))
			}

			tm.began = map[keys.Fingerprint]time.Time{}
			va = va.Add(time.Hour)
			period := uint64(va.Unix()) / uint64(time.Hour/time.Second)
			start := time.Now()
			a.ProbeAll(ctx, va)
			var early, distinct int
			var maxOff time.Duration
			for _, fp := range fps {
				off := directory.MeasureOffset(a.Fingerprint(), fp, period, probeTimeout/2)
				if off < 0 || off >= probeTimeout/2 {
					t.Fatalf("offset %v outside [0, %v)", off, probeTimeout/2)
				}
				maxOff = max(maxOff, off)
				if off != directory.MeasureOffset(b.Fingerprint(), fp, period, probeTimeout/2) {
					distinct++
				}
				began, ok := tm.began[fp]
				if !ok {
					t.Fatalf("relay %s not measured in the second phase", fp)
				}
				if began.Sub(start) < off {
					early++
					t.Logf("relay %s measured %v after the phase began, its offset is %v", fp, began.Sub(start), off)
				}
			}
			if maxOff < probeTimeout/8 {
				t.Fatalf("the largest of %d offsets is %v: not spread over %v", len(fps), maxOff, probeTimeout/2)
			}
			if distinct < len(fps)-1 {
				t.Fatalf("two authorities share the offsets of %d of %d relays", len(fps)-distinct, len(fps))
			}
			if spread && early > 0 {
				t.Fatalf("%d measurements began before their offset", early)
			}
			if !spread && early == 0 {
				t.Fatal("mutation: with the spread off every measurement still began after its offset")
			}
			v, err := a.BuildVote(va)
			if err != nil {
				t.Fatal(err)
			}
			for _, rs := range v.Relays {
				if rs.Measured != 100 {
					t.Fatalf("relay %s voted Measured=%d, want 100", rs.Fingerprint, rs.Measured)
				}
			}
			if len(v.Relays) != len(fps) {
				t.Fatalf("%d relays in the vote, want %d", len(v.Relays), len(fps))
			}
		})
	}
}
