package relay

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/unfed/unfed/relay/hop"
)

func TestHopObserverCountsByType(t *testing.T) {
	reg := prometheus.NewRegistry()
	obs, err := hopObserver(reg)
	if err != nil {
		t.Fatal(err)
	}
	obs(hop.Observation{Kind: hop.ObsClient, Data: []byte{0x03, 1, 2, 3}})
	obs(hop.Observation{Kind: hop.ObsClient, Data: []byte{0x03}})
	obs(hop.Observation{Kind: hop.ObsEdge, Data: []byte{0x01, 9}}) // sealed: not counted
	obs(hop.Observation{Kind: hop.ObsEdgePlain, Data: []byte{0x01, 9}})
	obs(hop.Observation{Kind: hop.ObsClient})
	n, err := testutil.GatherAndCount(reg, "unfed_hop_received_messages_total")
	if err != nil || n != 2 {
		t.Fatalf("series = %d, %v; want 2 (mpc_step, activations)", n, err)
	}
	mfs, _ := reg.Gather()
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			got[mf.GetName()+"/"+m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	if got["unfed_hop_received_messages_total/mpc_step"] != 2 || got["unfed_hop_received_bytes_total/mpc_step"] != 5 ||
		got["unfed_hop_received_messages_total/activations"] != 1 || got["unfed_hop_received_messages_total/tokens"] != 0 {
		t.Fatalf("counters %v", got)
	}
}
