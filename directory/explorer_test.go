package directory

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/unfed/unfed/relay/keys"
)

func testExplorerConsensus() *Consensus {
	fp := func(b byte) keys.Fingerprint {
		var f keys.Fingerprint
		for i := range f {
			f[i] = b
		}
		return f
	}
	ok := []Flag{FlagRunning, FlagValid}
	with := func(f ...Flag) []Flag { return append(append([]Flag{}, ok...), f...) }
	const id = "0f3e71476a6c22edac2a13cf9e55a3c61010c5009e62b13f750392c535e3578b"
	return &Consensus{Method: 2, ValidAfter: time.Date(2026, 1, 2, 4, 0, 0, 0, time.UTC),
		Authorities: []DirSource{{Name: "auth1", Fingerprint: fp(0xa1)}},
		Models:      []Model{{ID: id, Architecture: "llama", Layers: 5, Shards: []LayerRange{{0, 3}, {3, 5}}}},
		Relays: []RouterStatus{
			{Fingerprint: fp(1), Nickname: "guard1", Roles: []Role{RoleGuard}, Flags: with(FlagGuard)},
			{Fingerprint: fp(2), Nickname: "s1", Roles: []Role{RoleCompute}, Flags: with(FlagCompute), Compute: &ComputeInfo{Model: id, Layers: LayerRange{0, 3}}},
			{Fingerprint: fp(3), Nickname: "s2", Roles: []Role{RoleCompute}, Flags: with(FlagCompute), Compute: &ComputeInfo{Model: id, Layers: LayerRange{3, 5}}},
			// A flagged BadCompute relay does not count towards coverage.
			{Fingerprint: fp(4), Nickname: "bad", Roles: []Role{RoleCompute}, Flags: with(FlagCompute, FlagBadCompute), Compute: &ComputeInfo{Model: id, Layers: LayerRange{0, 3}}},
			{Fingerprint: fp(5), Nickname: "p1", Roles: []Role{RoleMPC}, Flags: with(FlagMPC), MPC: &MPCInfo{Model: id, Layers: LayerRange{0, 5}}},
			{Fingerprint: fp(6), Nickname: "p2", Roles: []Role{RoleMPC}, Flags: with(FlagMPC), MPC: &MPCInfo{Model: id, Layers: LayerRange{0, 5}}},
			// Not Running: not usable.
			{Fingerprint: fp(7), Nickname: "d1", Roles: []Role{RoleDealer}, Flags: []Flag{FlagValid, FlagDealer}, Dealer: &DealerInfo{Model: id}},
		},
		Signatures: []Signature{{Alg: SigEd25519, Authority: fp(0xa1)}},
	}
}

func TestExplorerCoverage(t *testing.T) {
	c := testExplorerConsensus()
	mc := coverage(c.Models[0], c.Relays)
	if got := mc.Anonymous; len(got) != 5 || got[0] != 1 || got[2] != 1 || got[3] != 1 || got[4] != 1 {
		t.Errorf("anonymous coverage %v, want one relay per layer", got)
	}
	if got := mc.Confidential; got[0] != 2 || got[4] != 2 {
		t.Errorf("confidential coverage %v", got)
	}
	if !mc.AnonymousCovered || mc.ConfidentialCovered || mc.Dealers != 0 {
		t.Errorf("covered anonymous %v confidential %v dealers %d: want anonymous only (no running dealer)", mc.AnonymousCovered, mc.ConfidentialCovered, mc.Dealers)
	}
	c.Relays[6].Flags = append(c.Relays[6].Flags, FlagRunning)
	if mc := coverage(c.Models[0], c.Relays); !mc.ConfidentialCovered || mc.Dealers != 1 {
		t.Errorf("with a running dealer: %+v", mc)
	}
	c.Relays[2].Flags = []Flag{FlagValid, FlagCompute}
	if mc := coverage(c.Models[0], c.Relays); mc.AnonymousCovered || mc.Anonymous[3] != 0 {
		t.Errorf("s2 not running: %+v", mc)
	}
}

// TestExplorerPages renders every page as HTML and JSON from a consensus.
func TestExplorerPages(t *testing.T) {
	c := testExplorerConsensus()
	trust := AuthoritySet{Authorities: []TrustedAuthority{{Name: "auth1", Fingerprint: c.Authorities[0].Fingerprint, Address: "127.0.0.1:1"},
		{Name: "auth2", Address: "127.0.0.1:2"}}}
	var h chronicle
	h.record(c)
	o := buildOverview(&trust.Authorities[0], trust, c, func(keys.Fingerprint) time.Duration { return 90 * time.Second }, h.snapshot(), c.ValidAfter)
	for _, page := range []string{"overview", "relays", "models"} {
		rec := httptest.NewRecorder()
		serveExplorer(rec, httptest.NewRequest("GET", "/", nil), page, o)
		body := rec.Body.String()
		if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
			t.Fatalf("%s: %d %s", page, rec.Code, rec.Header())
		}
		if strings.Contains(body, "<script") || strings.Contains(body, "http://") && !strings.Contains(body, `xmlns="http://www.w3.org/2000/svg"`) {
			t.Errorf("%s: script or external reference", page)
		}
		switch page {
		case "overview", "relays":
			if !strings.Contains(body, `id="relay-count">7<`) || strings.Count(body, `<tr class="relay"`) != 7 {
				t.Errorf("%s: relay count or rows wrong:\n%s", page, body)
			}
		}
		if page != "relays" {
			if n := strings.Count(body, `<rect class="layer"`); n != 10 {
				t.Errorf("%s: %d layer cells, want 2 modes × 5 layers", page, n)
			}
			if !strings.Contains(body, `data-anonymous-covered="true"`) || !strings.Contains(body, `data-confidential-covered="false"`) {
				t.Errorf("%s: coverage attributes wrong", page)
			}
		}
		if page == "overview" && (!strings.Contains(body, `<polyline`) || !strings.Contains(body, "1m30s")) {
			t.Errorf("overview lacks the history plot or uptimes:\n%s", body)
		}
		rec = httptest.NewRecorder()
		serveExplorer(rec, httptest.NewRequest("GET", "/?format=json", nil), page, o)
		var back Overview
		if err := json.Unmarshal(rec.Body.Bytes(), &back); err != nil || len(back.Relays) != 7 || back.Consensus.Relays != 7 ||
			len(back.Models) != 1 || !back.Models[0].AnonymousCovered || len(back.Authorities) != 2 || !back.Authorities[0].Signed || back.Authorities[1].Signed {
			t.Errorf("%s JSON: %v %+v", page, err, back)
		}
	}
	// A relay page, and JSON by Accept.
	rp := &relayPage{Overview: o, Relay: o.Relays[1]}
	rec := httptest.NewRecorder()
	serveExplorer(rec, httptest.NewRequest("GET", "/relays/x", nil), "relay", rp)
	if !strings.Contains(rec.Body.String(), "layers [0,3)") {
		t.Errorf("relay page:\n%s", rec.Body.String())
	}
	req := httptest.NewRequest("GET", "/relays/x", nil)
	req.Header.Set("Accept", "application/json")
	rec = httptest.NewRecorder()
	serveExplorer(rec, req, "relay", rp)
	var r struct{ Relay RelayInfo }
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil || r.Relay.Nickname != "s1" || r.Relay.Layers.Last != 3 {
		t.Errorf("relay JSON %v %s", err, rec.Body.String())
	}
	// No consensus yet still renders.
	rec = httptest.NewRecorder()
	serveExplorer(rec, httptest.NewRequest("GET", "/", nil), "overview", buildOverview(nil, trust, nil, nil, nil, time.Now()))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "No consensus yet") {
		t.Errorf("empty overview: %d\n%s", rec.Code, rec.Body.String())
	}
}

func TestChronicleBounded(t *testing.T) {
	var h chronicle
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range maxHistory + 10 {
		h.record(&Consensus{ValidAfter: t0.Add(time.Duration(i) * time.Hour)})
	}
	h.record(&Consensus{ValidAfter: t0.Add(time.Duration(maxHistory+9) * time.Hour), Relays: make([]RouterStatus, 3)})
	pts := h.snapshot()
	if len(pts) != maxHistory || !pts[0].ValidAfter.Equal(t0.Add(10*time.Hour)) || pts[len(pts)-1].Relays != 3 {
		t.Fatalf("%d points, first %v, last %+v", len(pts), pts[0].ValidAfter, pts[len(pts)-1])
	}
}
