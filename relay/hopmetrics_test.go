package relay

import (
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/unfed/unfed/compute/mpc"
	"github.com/unfed/unfed/relay/hop"
)

func TestHopObserverCountsByType(t *testing.T) {
	reg := prometheus.NewRegistry()
	obs, err := hopObserver(reg)
	if err != nil {
		t.Fatal(err)
	}
	obs(hop.Observation{Kind: hop.ObsClient, Data: []byte{0x07, 1, 2, 3}})
	obs(hop.Observation{Kind: hop.ObsClient, Data: []byte{0x07}})
	obs(hop.Observation{Kind: hop.ObsClient, Data: []byte{0x06, 0, 0, 0, 0, 0, 0, 0, 1}})
	obs(hop.Observation{Kind: hop.ObsClient, Data: []byte{0x03, 1}}) // the removed MPC_STEP
	obs(hop.Observation{Kind: hop.ObsEdge, Data: []byte{0x01, 9}})   // sealed: not counted
	obs(hop.Observation{Kind: hop.ObsEdgePlain, Data: []byte{0x01, 9}})
	obs(hop.Observation{Kind: hop.ObsEdgePlain, Data: []byte{0x04, 0, 9}})
	obs(hop.Observation{Kind: hop.ObsEdgePlain, Data: []byte{0x05, 0, 9}})
	obs(hop.Observation{Kind: hop.ObsClient})
	n, err := testutil.GatherAndCount(reg, "unfed_hop_received_messages_total")
	if err != nil || n != 6 {
		t.Fatalf("series = %d, %v; want 6 (mpc_input, deal, other, activations, mpc_prep, mpc_reshare)", n, err)
	}
	mfs, _ := reg.Gather()
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			got[mf.GetName()+"/"+m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	if got["unfed_hop_received_messages_total/mpc_input"] != 2 || got["unfed_hop_received_bytes_total/mpc_input"] != 5 ||
		got["unfed_hop_received_messages_total/deal"] != 1 || got["unfed_hop_received_messages_total/other"] != 1 ||
		got["unfed_hop_received_messages_total/activations"] != 1 || got["unfed_hop_received_messages_total/mpc_prep"] != 1 ||
		got["unfed_hop_received_bytes_total/mpc_reshare"] != 3 || got["unfed_hop_received_messages_total/tokens"] != 0 {
		t.Fatalf("counters %v", got)
	}
}

func TestMPCStepMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	done, err := mpcStepMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	done(mpc.RoleA, mpc.Stats{Rounds: 19, Time: 30 * time.Millisecond, PeerWait: 5 * time.Millisecond})
	done(mpc.RoleA, mpc.Stats{Rounds: 19, Time: 10 * time.Millisecond, PeerWait: 1 * time.Millisecond})
	done(mpc.RoleB, mpc.Stats{Rounds: 19, Time: 20 * time.Millisecond})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	type key struct{ name, role string }
	count, sum := map[key]uint64{}, map[key]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			k := key{mf.GetName(), m.GetLabel()[0].GetValue()}
			count[k], sum[k] = m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
		}
	}
	for _, c := range []struct {
		k     key
		count uint64
		sum   float64
	}{
		{key{"unfed_mpc_step_seconds", "A"}, 2, 0.040},
		{key{"unfed_mpc_peer_wait_seconds", "A"}, 2, 0.006},
		{key{"unfed_mpc_step_seconds", "B"}, 1, 0.020},
		{key{"unfed_mpc_peer_wait_seconds", "B"}, 1, 0},
	} {
		if count[c.k] != c.count || math.Abs(sum[c.k]-c.sum) > 1e-9 {
			t.Errorf("%v: count %d sum %g, want %d %g", c.k, count[c.k], sum[c.k], c.count, c.sum)
		}
	}
}

func TestDealerMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	dealt, err := dealerMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	dealt(1000)
	dealt(24)
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 || mfs[0].GetName() != "unfed_mpc_dealt_prep_bytes_total" ||
		mfs[0].GetMetric()[0].GetCounter().GetValue() != 1024 {
		t.Fatalf("dealer metrics %v, %v; want 1024 dealt bytes", mfs, err)
	}
}
