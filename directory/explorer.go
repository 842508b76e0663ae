package directory

// The explorer: human-readable pages about the network an authority sees,
// served on the authority's HTTP port next to the directory protocol. Pages
// are rendered on the server (html/template, explorer_page.go) with no
// external assets and no JavaScript; every page answers the same data as
// JSON with ?format=json (or Accept: application/json).
//
//	/                 the current consensus: relays, authorities and their
//	                  signatures, the catalog with per-layer coverage, history
//	/relays           every relay of the consensus
//	/relays/{fp}      one relay
//	/models           the model catalog with coverage per layer and mode
//
// The explorer reads only the published consensus, this authority's
// reachability history (uptime) and its record of recent consensuses; it
// accepts no input but a fingerprint in the path.

import (
	"encoding/hex"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/unfed/unfed/relay/keys"
)

// Explorer paths.
const (
	PathExplorer       = "/"
	PathExplorerRelays = "/relays"
	PathExplorerModels = "/models"
)

// maxHistory bounds the consensuses the explorer remembers.
const maxHistory = 96

// chronicle remembers a summary of the recent consensuses an authority
// published, for the history plot. Its zero value is ready.
type chronicle struct {
	mu     sync.Mutex
	points []HistoryPoint // by ValidAfter, oldest first
}

// HistoryPoint summarises one published consensus.
type HistoryPoint struct {
	ValidAfter time.Time `json:"valid_after"`
	Relays     int       `json:"relays"`
	Signatures int       `json:"signatures"`
}

func (h *chronicle) record(c *Consensus) {
	if c == nil {
		return
	}
	p := HistoryPoint{ValidAfter: c.ValidAfter, Relays: len(c.Relays), Signatures: signers(c)}
	h.mu.Lock()
	defer h.mu.Unlock()
	i, found := slices.BinarySearchFunc(h.points, p.ValidAfter, func(q HistoryPoint, t time.Time) int { return q.ValidAfter.Compare(t) })
	if found {
		h.points[i] = p
		return
	}
	h.points = slices.Insert(h.points, i, p)
	if len(h.points) > maxHistory {
		h.points = slices.Delete(h.points, 0, len(h.points)-maxHistory)
	}
}

func (h *chronicle) snapshot() []HistoryPoint {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.points)
}

// signers counts the distinct authorities that signed c.
func signers(c *Consensus) int {
	seen := map[keys.Fingerprint]bool{}
	for _, s := range c.Signatures {
		seen[s.Authority] = true
	}
	return len(seen)
}

// Overview is the data of the explorer's front page.
type Overview struct {
	Authority   string          `json:"authority"`
	Fingerprint string          `json:"fingerprint"`
	Now         time.Time       `json:"now"`
	Consensus   *ConsensusInfo  `json:"consensus"`
	Authorities []AuthorityInfo `json:"authorities"`
	Models      []ModelCoverage `json:"models"`
	Relays      []RelayInfo     `json:"relays"`
	History     []HistoryPoint  `json:"history"`
}

// ConsensusInfo summarises a consensus.
type ConsensusInfo struct {
	Method     int              `json:"method"`
	ValidAfter time.Time        `json:"valid_after"`
	FreshUntil time.Time        `json:"fresh_until"`
	ValidUntil time.Time        `json:"valid_until"`
	Digest     string           `json:"digest"`
	Relays     int              `json:"relays"`
	Signatures int              `json:"signatures"`
	Threshold  int              `json:"threshold"`
	Params     map[string]int64 `json:"params"`
}

// AuthorityInfo is one configured authority and whether it signed.
type AuthorityInfo struct {
	Name        string   `json:"name"`
	Fingerprint string   `json:"fingerprint"`
	Address     string   `json:"address"`
	Signed      bool     `json:"signed"`
	Algorithms  []string `json:"algorithms"`
}

// RelayInfo is one relay of the consensus.
type RelayInfo struct {
	Fingerprint  string     `json:"fingerprint"`
	Nickname     string     `json:"nickname"`
	Flags        []string   `json:"flags"`
	Roles        []string   `json:"roles"`
	Model        string     `json:"model,omitempty"`
	Layers       *LayerInfo `json:"layers,omitempty"`
	Kind         string     `json:"kind"` // compute, party, dealer, guard or bridge: what the relay serves
	Sessions     uint64     `json:"capacity_sessions"`
	TokensPerSec uint64     `json:"capacity_tokens_per_sec"`
	Price        uint64     `json:"price_per_token"`
	Weight       uint64     `json:"weight"`
	Family       []string   `json:"family"`
	Software     string     `json:"software"`
	Published    time.Time  `json:"published"`
	// UptimeSeconds is how long this authority has found the relay
	// reachable without a failed probe; 0 when it is not.
	UptimeSeconds int64    `json:"uptime_seconds"`
	Transports    []string `json:"transports"`
}

// LayerInfo is a layer range [First, Last).
type LayerInfo struct {
	First int `json:"first"`
	Last  int `json:"last"`
}

// ModelCoverage is one catalog entry with how many usable relays serve
// each of its layers in each circuit mode: compute relays (Running, Valid,
// Compute, not BadCompute) for anonymous circuits, party relays (Running,
// Valid, MPC) for confidential ones, which also need a dealer.
type ModelCoverage struct {
	ID           string      `json:"id"`
	Name         string      `json:"name,omitempty"`
	Architecture string      `json:"architecture"`
	Layers       int         `json:"layers"`
	Shards       []LayerInfo `json:"shards"`
	Anonymous    []int       `json:"anonymous_relays_per_layer"`
	Confidential []int       `json:"confidential_parties_per_layer"`
	Dealers      int         `json:"dealers"`
	// AnonymousCovered: every layer has a compute relay.
	AnonymousCovered bool `json:"anonymous_covered"`
	// ConfidentialCovered: every layer has two parties and a dealer exists.
	ConfidentialCovered bool `json:"confidential_covered"`
}

// buildOverview collects the explorer's data from a consensus (nil: none
// yet), the configured authorities, this authority's view of uptimes and
// its history.
func buildOverview(self *TrustedAuthority, trust AuthoritySet, c *Consensus, uptime func(keys.Fingerprint) time.Duration, history []HistoryPoint, now time.Time) *Overview {
	o := &Overview{Now: now.UTC(), History: history, Authorities: []AuthorityInfo{}, Models: []ModelCoverage{}, Relays: []RelayInfo{}}
	if self != nil {
		o.Authority, o.Fingerprint = self.Name, self.Fingerprint.String()
	}
	algs := map[keys.Fingerprint][]string{}
	if c != nil {
		d := c.Digest()
		o.Consensus = &ConsensusInfo{Method: c.Method, ValidAfter: c.ValidAfter, FreshUntil: c.FreshUntil, ValidUntil: c.ValidUntil,
			Digest: hex.EncodeToString(d[:]), Relays: len(c.Relays), Signatures: signers(c), Threshold: trust.Threshold(), Params: c.Params}
		for _, s := range c.Signatures {
			algs[s.Authority] = append(algs[s.Authority], s.Alg)
		}
		for i := range c.Relays {
			o.Relays = append(o.Relays, relayInfo(&c.Relays[i], uptime))
		}
		for _, m := range c.Models {
			o.Models = append(o.Models, coverage(m, c.Relays))
		}
	}
	for _, a := range trust.Authorities {
		o.Authorities = append(o.Authorities, AuthorityInfo{Name: a.Name, Fingerprint: a.Fingerprint.String(), Address: a.Address,
			Signed: len(algs[a.Fingerprint]) > 0, Algorithms: append([]string{}, algs[a.Fingerprint]...)})
	}
	return o
}

func relayInfo(r *RouterStatus, uptime func(keys.Fingerprint) time.Duration) RelayInfo {
	ri := RelayInfo{Fingerprint: r.Fingerprint.String(), Nickname: r.Nickname, Flags: []string{}, Roles: []string{}, Family: []string{},
		Transports: []string{}, Sessions: r.Capacity.Sessions, TokensPerSec: r.Capacity.TokensPerSec, Price: r.PricePerToken,
		Weight: r.Weight, Software: r.Software, Published: r.Published}
	for _, f := range r.Flags {
		ri.Flags = append(ri.Flags, string(f))
	}
	for _, role := range r.Roles {
		ri.Roles = append(ri.Roles, string(role))
	}
	for _, f := range r.Family {
		ri.Family = append(ri.Family, f.String())
	}
	for _, t := range r.Transports {
		ri.Transports = append(ri.Transports, t.Name)
	}
	switch {
	case r.Compute != nil:
		ri.Kind, ri.Model, ri.Layers = "compute", r.Compute.Model, &LayerInfo{r.Compute.Layers.First, r.Compute.Layers.Last}
	case r.MPC != nil:
		ri.Kind, ri.Model, ri.Layers = "party", r.MPC.Model, &LayerInfo{r.MPC.Layers.First, r.MPC.Layers.Last}
	case r.Dealer != nil:
		ri.Kind, ri.Model = "dealer", r.Dealer.Model
	case r.HasRole(RoleBridge):
		ri.Kind = "bridge"
	default:
		ri.Kind = "guard"
	}
	if uptime != nil {
		ri.UptimeSeconds = int64(uptime(r.Fingerprint).Seconds())
	}
	return ri
}

func usable(r *RouterStatus, f Flag) bool {
	return r.HasFlag(FlagRunning) && r.HasFlag(FlagValid) && r.HasFlag(f) && !r.HasFlag(FlagBadCompute)
}

func coverage(m Model, relays []RouterStatus) ModelCoverage {
	mc := ModelCoverage{ID: m.ID, Name: m.Name, Architecture: m.Architecture, Layers: m.Layers, Shards: []LayerInfo{},
		Anonymous: make([]int, max(m.Layers, 0)), Confidential: make([]int, max(m.Layers, 0))}
	for _, s := range m.Shards {
		mc.Shards = append(mc.Shards, LayerInfo(s))
	}
	add := func(counts []int, lr LayerRange) {
		for l := max(lr.First, 0); l < min(lr.Last, len(counts)); l++ {
			counts[l]++
		}
	}
	for i := range relays {
		r := &relays[i]
		switch {
		case r.Compute != nil && r.Compute.Model == m.ID && usable(r, FlagCompute):
			add(mc.Anonymous, r.Compute.Layers)
		case r.MPC != nil && r.MPC.Model == m.ID && usable(r, FlagMPC):
			add(mc.Confidential, r.MPC.Layers)
		case r.Dealer != nil && r.Dealer.Model == m.ID && usable(r, FlagDealer):
			mc.Dealers++
		}
	}
	mc.AnonymousCovered = m.Layers > 0 && slices.Min(mc.Anonymous) >= 1
	mc.ConfidentialCovered = m.Layers > 0 && slices.Min(mc.Confidential) >= 2 && mc.Dealers > 0
	return mc
}

// mountExplorer adds the explorer's pages to mux.
func (a *Authority) mountExplorer(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		serveExplorer(w, r, "overview", a.overview())
	})
	mux.HandleFunc("GET "+PathExplorerRelays, func(w http.ResponseWriter, r *http.Request) {
		o := a.overview()
		serveExplorer(w, r, "relays", o)
	})
	mux.HandleFunc("GET "+PathExplorerRelays+"/{fp}", func(w http.ResponseWriter, r *http.Request) {
		fp, err := keys.ParseFingerprint(r.PathValue("fp"))
		if err != nil {
			http.Error(w, "explorer: not a fingerprint (40 hex digits)", http.StatusBadRequest)
			return
		}
		o := a.overview()
		for _, ri := range o.Relays {
			if ri.Fingerprint == fp.String() {
				serveExplorer(w, r, "relay", &relayPage{Overview: o, Relay: ri})
				return
			}
		}
		http.Error(w, "explorer: no relay "+fp.String()+" in the current consensus", http.StatusNotFound)
	})
	mux.HandleFunc("GET "+PathExplorerModels, func(w http.ResponseWriter, r *http.Request) {
		serveExplorer(w, r, "models", a.overview())
	})
}

// relayPage is the data of /relays/{fp}.
type relayPage struct {
	*Overview `json:"-"`
	Relay     RelayInfo `json:"relay"`
}

func (a *Authority) overview() *Overview {
	c := a.Current()
	a.chronicle.record(c) // a consensus loaded from disk at start
	now := a.cfg.Now()
	return buildOverview(a.self, a.trust, c, func(fp keys.Fingerprint) time.Duration {
		a.mu.Lock()
		defer a.mu.Unlock()
		if h := a.history[fp]; h != nil && !h.runningSince.IsZero() {
			return now.Sub(h.runningSince)
		}
		return 0
	}, a.chronicle.snapshot(), now)
}

// wantsJSON reports whether the request asks for the page's data as JSON.
func wantsJSON(r *http.Request) bool {
	if f := r.URL.Query().Get("format"); f != "" {
		return f == "json"
	}
	return strings.Contains(r.Header.Get("Accept"), "application/json") && !strings.Contains(r.Header.Get("Accept"), "text/html")
}

func serveExplorer(w http.ResponseWriter, r *http.Request, page string, data any) {
	w.Header().Set("Cache-Control", "no-store")
	if wantsJSON(r) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(data)
		return
	}
	var b strings.Builder
	if err := explorerTemplates.ExecuteTemplate(&b, page, data); err != nil {
		http.Error(w, "explorer: rendering failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:")
	w.Write([]byte(b.String()))
}
