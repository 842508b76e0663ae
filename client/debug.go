package client

// /debug/circuits on the client's metrics listener (spec/08-client-api.md
// §6): the relays of the most recent circuits, by fingerprint and role, so an
// operator (and `unfed testnet demo`) can see which relays served a request.
// It never shows prompts, tokens, isolation keys or timing per request.

import (
	"encoding/json"
	"net/http"
	"sync"
)

// maxRecentCircuits bounds the history kept for /debug/circuits.
const maxRecentCircuits = 16

type debugHop struct {
	Fingerprint string `json:"fingerprint"`
	Role        string `json:"role"`
	Layers      []int  `json:"layers,omitempty"`
}

type debugCircuit struct {
	Hops []debugHop `json:"hops"`
	// Prebuilt is true for a circuit built ahead of need.
	Prebuilt bool `json:"prebuilt"`
}

type recentCircuits struct {
	mu   sync.Mutex // guards list
	list []debugCircuit
}

// add records the path of a circuit a request used.
func (r *recentCircuits) add(p *Path, prebuilt bool) {
	hops := make([]debugHop, 0, len(p.Hops))
	hops = append(hops, debugHop{Fingerprint: p.Hops[0].Fingerprint.String(), Role: "guard"})
	if len(p.Stages) > 0 {
		// Confidential: D, A, B per stage (spec/10 §2).
		for _, st := range p.Stages {
			layers := []int{st.Range.First, st.Range.Last}
			hops = append(hops,
				debugHop{Fingerprint: st.Dealer.Fingerprint.String(), Role: "dealer", Layers: layers},
				debugHop{Fingerprint: st.A.Fingerprint.String(), Role: "party-A", Layers: layers},
				debugHop{Fingerprint: st.B.Fingerprint.String(), Role: "party-B", Layers: layers})
		}
	} else {
		for i, h := range p.Hops[1:] {
			d := debugHop{Fingerprint: h.Fingerprint.String(), Role: "compute"}
			if i < len(p.Shards) {
				d.Layers = []int{p.Shards[i].First, p.Shards[i].Last}
			}
			hops = append(hops, d)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.list = append(r.list, debugCircuit{Hops: hops, Prebuilt: prebuilt})
	if len(r.list) > maxRecentCircuits {
		r.list = r.list[len(r.list)-maxRecentCircuits:]
	}
}

func (r *recentCircuits) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	r.mu.Lock()
	out := struct {
		Circuits []debugCircuit `json:"circuits"`
	}{Circuits: append([]debugCircuit{}, r.list...)}
	r.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}
