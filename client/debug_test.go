package client

import (
	"encoding/json"
	"net/http/httptest"
	"testing"

	"github.com/unfed/unfed/directory"
)

func TestDebugCircuitsRolesAndBound(t *testing.T) {
	rs := testNetwork()
	p := &Path{Hops: []*directory.RouterStatus{&rs[0], &rs[1], &rs[2], &rs[3], &rs[5]}, MPC: true}
	var r recentCircuits
	for i := 0; i < maxRecentCircuits+3; i++ {
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
	hops := out.Circuits[0].Hops
	want := []string{"guard", "mpc-A", "mpc-B", "compute", "compute"}
	for i, h := range hops {
		if h.Role != want[i] || h.Fingerprint != p.Hops[i].Fingerprint.String() {
			t.Fatalf("hop %d = %+v, want role %s", i, h, want[i])
		}
	}
	if hops[3].Layers[0] != 1 || hops[3].Layers[1] != 3 {
		t.Fatalf("compute hop layers %v", hops[3].Layers)
	}
}
