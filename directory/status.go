package directory

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/unfed/unfed/directory/doc"
	"github.com/unfed/unfed/relay/keys"
)

// Network-status documents (spec/04-directory.md §4, §5): votes and
// consensuses share one layout: a header, router status entries sorted by
// fingerprint, "directory-footer", then signatures over the SHA-256 digest of
// everything up to and including the footer line.

// Flag is a status flag an authority assigns to a relay (spec §6).
type Flag string

// The flags of consensus methods 1 and 2.
const (
	FlagCompute Flag = "Compute"
	FlagDealer  Flag = "Dealer"
	FlagGuard   Flag = "Guard"
	FlagMPC     Flag = "MPC"
	FlagRunning Flag = "Running"
	FlagStable  Flag = "Stable"
	FlagValid   Flag = "Valid"
	// FlagBadCompute: the authorities verified a fraud proof against the
	// relay (spec/11-verification.md §5.3); clients never use it.
	FlagBadCompute Flag = "BadCompute"
)

// KnownFlags are the flags methods 1 and 2 vote on, sorted.
var KnownFlags = []Flag{FlagBadCompute, FlagCompute, FlagDealer, FlagGuard, FlagMPC, FlagRunning, FlagStable, FlagValid}

// RouterStatus is what a vote or consensus says about one relay: the fields
// of its descriptor clients need, plus flags and the numeric values
// authorities vote on.
type RouterStatus struct {
	Fingerprint keys.Fingerprint
	Nickname    string
	Published   time.Time
	Identity    ed25519.PublicKey
	Onion       OnionPublic
	LinkKey     [32]byte
	Transports  []Transport
	Roles       []Role
	Compute     *ComputeInfo
	MPC         *MPCInfo
	Dealer      *DealerInfo
	Verifier    *VerifierInfo
	Family      []keys.Fingerprint
	Software    string
	Flags       []Flag
	// Capacity and PricePerToken are what the relay claims (in a
	// consensus, the low median of the voters' values). Clients do not
	// weight paths by Capacity: it bounds Weight from above (spec §7.4).
	Capacity      Capacity
	PricePerToken uint64
	// Measured is, in a vote, the voter's measured weight of the relay in
	// KiB/s (spec §6.3); 0 when it has none. Consensuses do not carry it.
	Measured uint64
	// Weight is, in a consensus of method 2 or later, the relay's
	// path-selection weight (spec §7.4), at least 1; 0 in votes and in
	// method-1 consensuses.
	Weight uint64
	// Unmeasured is set, in a consensus, when Weight is the default given
	// to relays that too few authorities measured.
	Unmeasured bool
}

// HasFlag reports whether the entry carries f.
func (r *RouterStatus) HasFlag(f Flag) bool { return slices.Contains(r.Flags, f) }

// HasRole reports whether the relay advertises role.
func (r *RouterStatus) HasRole(role Role) bool { return slices.Contains(r.Roles, role) }

// StatusOf returns a router status entry carrying a verified descriptor's
// client-facing fields and the given flags (sorted by the caller).
func StatusOf(d *Descriptor, flags []Flag) RouterStatus {
	return RouterStatus{
		Fingerprint: d.Fingerprint(), Nickname: d.Nickname, Published: d.Published, Identity: d.Identity,
		Onion: d.Onion, LinkKey: d.LinkKey,
		Transports: d.Transports, Roles: sortedRoles(d.Roles), Compute: d.Compute, MPC: d.MPC, Dealer: d.Dealer, Verifier: d.Verifier,
		Family: d.Family, Software: d.Software, Flags: flags,
		Capacity: d.Capacity, PricePerToken: d.PricePerToken,
	}
}

func sortedRoles(rs []Role) []Role {
	out := slices.Clone(rs)
	slices.Sort(out)
	return slices.Compact(out)
}

// Model is a model catalog entry (spec §5.3).
type Model struct {
	ID           string
	Architecture string
	Layers       int
	// Shards are the layer ranges relays serve, sorted, covering [0, Layers).
	Shards []LayerRange
	// TensorHashRoot is the hex root hash of the model's tensor manifest.
	TensorHashRoot string
	// Name is the model's short human name (ValidModelName), unique in the
	// catalog regardless of case; empty when it has none. A client accepts
	// it wherever it accepts the id, and as the DNS label of
	// "<name>.unfed" on its SOCKS front (spec §7.2).
	Name string
}

// DirSource names an authority in a vote or consensus.
type DirSource struct {
	Name        string
	Fingerprint keys.Fingerprint
	Address     string
}

// Signature is one authority's signature on a vote or consensus digest.
type Signature struct {
	// Alg is SigEd25519 or SigMLDSA65.
	Alg       string
	Authority keys.Fingerprint
	Sig       []byte
}

// Signature algorithms.
const (
	SigEd25519 = "ed25519"
	SigMLDSA65 = "mldsa65"
)

// statusDoc is the decoded form shared by votes and consensuses.
type statusDoc struct {
	kind       string // "vote" or "consensus"
	methods    []int  // vote: consensus-methods; consensus: the one method
	published  time.Time
	validAfter time.Time
	freshUntil time.Time
	validUntil time.Time
	voteDelay  time.Duration
	distDelay  time.Duration
	knownFlags []Flag
	params     map[string]int64
	sources    []DirSource
	mintKeys   []MintKey
	models     []Model
	relays     []RouterStatus
	sigs       []Signature
	body       []byte // signed part, through "directory-footer\n"
}

// Limits for network-status documents.
const (
	MaxConsensusSize = 64 << 20
	MaxVoteSize      = 64 << 20
	maxSignatures    = 64
	maxModels        = 256
	maxShards        = 256
	maxParams        = 128
)

var statusLimits = doc.Limits{MaxSize: MaxConsensusSize, MaxLine: 8192, MaxItems: 1 << 21, MaxArgs: 256, MaxObject: 16 << 10}

// ErrBadDocument is wrapped by every vote and consensus parse error.
var ErrBadDocument = errors.New("directory: bad network-status document")

func (s *statusDoc) digest() [32]byte { return sha256.Sum256(s.body) }

// encode writes the canonical document body, through "directory-footer".
func (s *statusDoc) encode() ([]byte, error) {
	var w doc.Writer
	w.Grow(len(s.relays)*2048 + 4096)
	w.Item("network-status-version", "1")
	w.Item("vote-status", s.kind)
	if s.kind == "vote" {
		ms := make([]string, len(s.methods))
		for i, m := range s.methods {
			ms[i] = strconv.Itoa(m)
		}
		w.Item("consensus-methods", ms...)
		w.Item("published", timeArgs(s.published)...)
	} else {
		w.Item("consensus-method", strconv.Itoa(s.methods[0]))
	}
	w.Item("valid-after", timeArgs(s.validAfter)...)
	w.Item("fresh-until", timeArgs(s.freshUntil)...)
	w.Item("valid-until", timeArgs(s.validUntil)...)
	w.Item("voting-delay", fmtUint(uint64(s.voteDelay/time.Second)), fmtUint(uint64(s.distDelay/time.Second)))
	flags := make([]string, len(s.knownFlags))
	for i, f := range s.knownFlags {
		flags[i] = string(f)
	}
	w.Item("known-flags", flags...)
	var ps []string
	for _, k := range slices.Sorted(maps.Keys(s.params)) {
		ps = append(ps, k+"="+strconv.FormatInt(s.params[k], 10))
	}
	w.Item("params", ps...)
	for _, d := range s.sources {
		w.Item("dir-source", d.Name, d.Fingerprint.String(), d.Address)
	}
	for _, k := range s.mintKeys {
		encodeMintKey(&w, k)
	}
	for _, m := range s.models {
		encodeModel(&w, m)
	}
	for i := range s.relays {
		encodeRouterDesc(&w, &s.relays[i])
		encodeRouterVotes(&w, &s.relays[i])
	}
	w.Item("directory-footer")
	return w.Bytes()
}

func encodeModel(w *doc.Writer, m Model) {
	args := []string{m.ID, m.Architecture, strconv.Itoa(m.Layers), m.TensorHashRoot}
	if m.Name != "" {
		args = append(args, m.Name)
	}
	w.Item("model", args...)
	for _, sh := range m.Shards {
		w.Item("shard", strconv.Itoa(sh.First), strconv.Itoa(sh.Last))
	}
}

// encodeRouterDesc writes the descriptor-derived part of an entry; its bytes
// are what the consensus algorithm compares between votes (spec §7.3).
func encodeRouterDesc(w *doc.Writer, r *RouterStatus) {
	w.Item("r", append([]string{r.Fingerprint.String()}, timeArgs(r.Published)...)...)
	if r.Nickname != "" {
		w.Item("n", r.Nickname)
	}
	w.Item("id", fmtB64(r.Identity))
	w.Item("onion", fmtB64(r.Onion.X25519[:]), fmtB64(r.Onion.XWing))
	w.Item("link", fmtB64(r.LinkKey[:]))
	for _, t := range r.Transports {
		w.Item("t", append([]string{t.Name, t.Addr}, t.Args...)...)
	}
	w.Item("roles", rolesArgs(r.Roles)...)
	if c := r.Compute; c != nil {
		w.Item("compute", c.Model, strconv.Itoa(c.Layers.First), strconv.Itoa(c.Layers.Last))
	}
	if m := r.MPC; m != nil {
		w.Item("mpc", m.Model, strconv.Itoa(m.Layers.First), strconv.Itoa(m.Layers.Last))
	}
	if d := r.Dealer; d != nil {
		w.Item("dealer", d.Model)
	}
	if v := r.Verifier; v != nil {
		w.Item("verifier", v.Model)
	}
	if len(r.Family) > 0 {
		w.Item("family", fpArgs(r.Family)...)
	}
	if r.Software != "" {
		w.Item("v", r.Software)
	}
}

// encodeRouterVotes writes the voted part of an entry: flags and numbers.
func encodeRouterVotes(w *doc.Writer, r *RouterStatus) {
	flags := make([]string, len(r.Flags))
	for i, f := range r.Flags {
		flags[i] = string(f)
	}
	w.Item("s", flags...)
	args := []string{fmtUint(r.Capacity.Sessions), fmtUint(r.Capacity.TokensPerSec), fmtUint(r.PricePerToken)}
	if r.Measured > 0 {
		args = append(args, "Measured="+fmtUint(r.Measured))
	}
	if r.Weight > 0 {
		args = append(args, "Weight="+fmtUint(r.Weight))
		if r.Unmeasured {
			args = append(args, "Unmeasured=1")
		}
	}
	w.Item("w", args...)
}

func encodeSignatures(w *doc.Writer, sigs []Signature) {
	for _, s := range sigs {
		switch s.Alg {
		case SigEd25519:
			w.Item("directory-signature", s.Alg, s.Authority.String(), fmtB64(s.Sig))
		default:
			w.Item("directory-signature", s.Alg, s.Authority.String())
			w.Object("SIGNATURE", s.Sig)
		}
	}
}

func sortSignatures(sigs []Signature) {
	slices.SortFunc(sigs, func(a, b Signature) int {
		if c := compareFP(a.Authority, b.Authority); c != 0 {
			return c
		}
		return compareStr(a.Alg, b.Alg)
	})
}

func compareFP(a, b keys.Fingerprint) int { return slices.Compare(a[:], b[:]) }

func compareStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// parseStatus decodes a vote or consensus (whichever kind says), checking
// syntax, canonical order and value ranges; signatures are not checked here.
func parseStatus(b []byte, kind string) (*statusDoc, error) {
	items, err := doc.Parse(b, statusLimits)
	if err != nil {
		return nil, err
	}
	if items[0].Keyword != "network-status-version" || len(items[0].Args) < 1 || items[0].Args[0] != "1" {
		return nil, errors.New("does not start with \"network-status-version 1\"")
	}
	s := &statusDoc{params: map[string]int64{}}
	p := statusParser{s: s, seen: map[string]bool{}}
	i := 1
	for ; i < len(items) && items[i].Keyword != "r" && items[i].Keyword != "directory-footer"; i++ {
		if err := p.header(items[i]); err != nil {
			return nil, fmt.Errorf("line %d: %s: %v", items[i].Line, items[i].Keyword, err)
		}
	}
	if s.kind != kind {
		return nil, fmt.Errorf("vote-status is %q, want %q", s.kind, kind)
	}
	for _, kw := range []string{"valid-after", "fresh-until", "valid-until", "voting-delay", "known-flags", "params"} {
		if !p.seen[kw] {
			return nil, fmt.Errorf("missing %q", kw)
		}
	}
	if len(s.methods) == 0 || kind == "vote" && !p.seen["published"] {
		return nil, errors.New("missing consensus method or published time")
	}
	if !s.validAfter.Before(s.freshUntil) || s.freshUntil.After(s.validUntil) {
		return nil, errors.New("times out of order: want valid-after < fresh-until <= valid-until")
	}
	if err := p.finishModel(); err != nil {
		return nil, err
	}
	for ; i < len(items) && items[i].Keyword != "directory-footer"; i++ {
		if err := p.router(items[i]); err != nil {
			return nil, fmt.Errorf("line %d: %s: %v", items[i].Line, items[i].Keyword, err)
		}
	}
	if err := p.finishRouter(); err != nil {
		return nil, err
	}
	if err := p.finishMintKeys(); err != nil {
		return nil, err
	}
	if i == len(items) {
		return nil, errors.New("missing \"directory-footer\"")
	}
	s.body = b[:items[i].End]
	for _, it := range items[i+1:] {
		if err := p.signature(it); err != nil {
			return nil, fmt.Errorf("line %d: %s: %v", it.Line, it.Keyword, err)
		}
	}
	return s, nil
}
