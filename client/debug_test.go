package client

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/unfed/unfed/directory"
)

func TestDebugCircuitsRolesAndBound(t *testing.T) {
	rs := make([]directory.RouterStatus, 7)
	for i := range rs {
		rs[i] = status(i+1, fmt.Sprintf("10.%d.0.1:9001", i), nil)
	}
	conf := &Path{Hops: []*directory.RouterStatus{&rs[0], &rs[1], &rs[2], &rs[3], &rs[4], &rs[5], &rs[6]}, Mode: ModeConfidential,
		Stages: []Stage{{Range: directory.LayerRange{First: 0, Last: 2}, Dealer: &rs[1], A: &rs[2], B: &rs[3]},
			{Range: directory.LayerRange{First: 2, Last: 5}, Dealer: &rs[4], A: &rs[5], B: &rs[6]}}}
	anon := &Path{Hops: []*directory.RouterStatus{&rs[0], &rs[1], &rs[2]}, Mode: ModeAnonymous,
		Shards: []directory.LayerRange{{First: 0, Last: 3}, {First: 3, Last: 5}}}
	var r recentCircuits
	for i := 0; i < maxRecentCircuits+3; i++ {
		p := conf
		if i%2 == 1 {
			p = anon
		}
		r.add(p, i%2 == 1)
	}
	w := httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequest("GET", "/debug/circuits", nil))
	var out struct {
		Circuits []struct {
			Hops []debugHop `json:"hops"`
		} `json:"circuits"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Circuits) != maxRecentCircuits {
		t.Fatalf("%d circuits kept, want %d", len(out.Circuits), maxRecentCircuits)
	}
	// The oldest kept is add number 3: anonymous.
	check := func(hops []debugHop, p *Path, roles []string, layers [][]int) {
		t.Helper()
		if len(hops) != len(roles) {
			t.Fatalf("%d hops, want %d", len(hops), len(roles))
		}
		for i, h := range hops {
			if h.Role != roles[i] || h.Fingerprint != p.Hops[i].Fingerprint.String() || fmt.Sprint(h.Layers) != fmt.Sprint(layers[i]) {
				t.Fatalf("hop %d = %+v, want role %s layers %v", i, h, roles[i], layers[i])
			}
		}
	}
	check(out.Circuits[0].Hops, anon, []string{"guard", "compute", "compute"}, [][]int{nil, {0, 3}, {3, 5}})
	check(out.Circuits[1].Hops, conf, []string{"guard", "dealer", "party-A", "party-B", "dealer", "party-A", "party-B"},
		[][]int{nil, {0, 2}, {0, 2}, {0, 2}, {2, 5}, {2, 5}, {2, 5}})
}
