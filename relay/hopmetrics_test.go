package relay

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/unfed/unfed/relay/obs"
)

// TestComputeMetrics: passes land in the histogram of the relay's layer
// range, by phase, and the metric passes the name lint.
func TestComputeMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	done, err := computeMetrics(reg, 3, 5)
	if err != nil {
		t.Fatal(err)
	}
	done(7, 3*time.Millisecond)
	done(1, time.Millisecond)
	done(1, time.Millisecond)
	if err := obs.LintRegistry(reg); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := ""
			for _, l := range m.GetLabel() {
				key += l.GetName() + "=" + l.GetValue() + " "
			}
			got[key] = m.GetHistogram().GetSampleCount()
		}
	}
	if got["layers=3-5 phase=prefill "] != 1 || got["layers=3-5 phase=decode "] != 2 {
		t.Fatalf("samples %v", got)
	}
	if n := testutil.CollectAndCount(reg, "unfed_hop_compute_seconds"); n != 2 {
		t.Fatalf("%d series", n)
	}
}
