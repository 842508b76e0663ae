package directory

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/unfed/unfed/directory/doc"
	"github.com/unfed/unfed/relay/keys"
)

// Votes and consensuses as Go values, and verify-before-use
// (spec/04-directory.md §4, §5, §8.3).

// Consensus methods (spec §7.1).
const (
	// ConsensusMethod is the newest consensus method this code implements.
	ConsensusMethod = 5
	// WeightsMethod is the first method whose consensus carries measured
	// path-selection weights (spec §7.4).
	WeightsMethod = 2
	// VerifierMethod is the first method whose entries carry the
	// `verifier` line (spec §7.3, spec/11 §3.5); older methods drop it
	// (the role stays, as older authorities keep it).
	VerifierMethod = 4
	// MintKeyMethod is the first method whose consensus carries the
	// authorities' mint keys (spec §7.2, spec/12 §2.1).
	MintKeyMethod = 5
)

// ConsensusMethods are the methods this code implements, increasing; an
// authority lists them in its votes.
var ConsensusMethods = []int{1, 2, 3, 4, 5}

// Vote is one authority's opinion of the network for one period.
type Vote struct {
	Authority  DirSource
	Methods    []int
	Published  time.Time
	ValidAfter time.Time
	FreshUntil time.Time
	ValidUntil time.Time
	VoteDelay  time.Duration
	DistDelay  time.Duration
	KnownFlags []Flag
	Params     map[string]int64
	// MintKeys are the voter's own mint keys (spec §5.1).
	MintKeys   []MintKey
	Models     []Model
	Relays     []RouterStatus
	Signatures []Signature

	raw    []byte
	digest [32]byte
}

// Raw returns the signed vote document.
func (v *Vote) Raw() []byte { return v.raw }

// Consensus is the network status all authorities agreed on.
type Consensus struct {
	Method      int
	ValidAfter  time.Time
	FreshUntil  time.Time
	ValidUntil  time.Time
	VoteDelay   time.Duration
	DistDelay   time.Duration
	KnownFlags  []Flag
	Params      map[string]int64
	Authorities []DirSource
	// MintKeys are the authorities' mint keys (method 5 and later),
	// sorted by authority, epoch and denomination.
	MintKeys   []MintKey
	Models     []Model
	Relays     []RouterStatus
	Signatures []Signature

	body   []byte
	raw    []byte
	digest [32]byte
}

// Raw returns the document with all its signatures.
func (c *Consensus) Raw() []byte { return c.raw }

// Digest returns the SHA-256 digest of the signed part.
func (c *Consensus) Digest() [32]byte { return c.digest }

// Param returns network parameter name, or def when the consensus does not set it.
func (c *Consensus) Param(name string, def int64) int64 {
	if v, ok := c.Params[name]; ok {
		return v
	}
	return def
}

// Relay returns the entry for fp, or nil.
func (c *Consensus) Relay(fp keys.Fingerprint) *RouterStatus {
	i, ok := slices.BinarySearchFunc(c.Relays, fp, func(r RouterStatus, fp keys.Fingerprint) int { return compareFP(r.Fingerprint, fp) })
	if !ok {
		return nil
	}
	return &c.Relays[i]
}

// Model returns the catalog entry for id, or nil.
func (c *Consensus) Model(id string) *Model {
	for i := range c.Models {
		if c.Models[i].ID == id {
			return &c.Models[i]
		}
	}
	return nil
}

func (v *Vote) toDoc() *statusDoc {
	return &statusDoc{kind: "vote", methods: v.Methods, published: v.Published, validAfter: v.ValidAfter,
		freshUntil: v.FreshUntil, validUntil: v.ValidUntil, voteDelay: v.VoteDelay, distDelay: v.DistDelay,
		knownFlags: v.KnownFlags, params: v.Params, sources: []DirSource{v.Authority}, mintKeys: v.MintKeys, models: v.Models, relays: v.Relays}
}

func (c *Consensus) toDoc() *statusDoc {
	return &statusDoc{kind: "consensus", methods: []int{c.Method}, validAfter: c.ValidAfter,
		freshUntil: c.FreshUntil, validUntil: c.ValidUntil, voteDelay: c.VoteDelay, distDelay: c.DistDelay,
		knownFlags: c.KnownFlags, params: c.Params, sources: c.Authorities, mintKeys: c.MintKeys, models: c.Models, relays: c.Relays}
}

// signVote encodes v, signs it with s and sets its raw form.
func signVote(v *Vote, s *Signer, pq bool) error {
	body, err := v.toDoc().encode()
	if err != nil {
		return fmt.Errorf("directory: encoding vote: %w", err)
	}
	v.digest = sha256Sum(body)
	if v.Signatures, err = s.sign(voteSigContext, v.digest, pq); err != nil {
		return err
	}
	v.raw, err = assemble(body, v.Signatures)
	return err
}

// encodeBody sets the consensus's signed part and digest.
func (c *Consensus) encodeBody() error {
	body, err := c.toDoc().encode()
	if err != nil {
		return fmt.Errorf("directory: encoding consensus: %w", err)
	}
	c.body, c.digest = body, sha256Sum(body)
	c.raw, err = assemble(body, c.Signatures)
	return err
}

// withSignatures returns a copy of c carrying sigs (sorted), with its raw
// form rebuilt.
func (c *Consensus) withSignatures(sigs []Signature) (*Consensus, error) {
	cp := *c
	cp.Signatures = slices.Clone(sigs)
	sortSignatures(cp.Signatures)
	var err error
	cp.raw, err = assemble(c.body, cp.Signatures)
	return &cp, err
}

func assemble(body []byte, sigs []Signature) ([]byte, error) {
	var w doc.Writer
	encodeSignatures(&w, sigs)
	tail, err := w.Bytes()
	if err != nil {
		return nil, err
	}
	return append(slices.Clip(slices.Clone(body)), tail...), nil
}

// Unverified holds a parsed document that has not been checked against a
// trust set. Only Verify yields the value for use.
type Unverified[T any] struct {
	value *T
	check func(trust AuthoritySet, now time.Time) error
}

// Verify checks signatures (and, for a consensus, times) and returns the
// value if they hold.
func (u *Unverified[T]) Verify(trust AuthoritySet, now time.Time) (*T, error) {
	if err := u.check(trust, now); err != nil {
		return nil, err
	}
	return u.value, nil
}

// Unchecked returns the value without verification. It exists for display
// tools (unfed consensus show); nothing may act on what it returns.
func (u *Unverified[T]) Unchecked() *T { return u.value }

// Verification errors callers branch on.
var (
	// ErrNotEnoughSignatures: fewer than Threshold trusted authorities signed.
	ErrNotEnoughSignatures = errors.New("directory: not enough valid authority signatures")
	// ErrExpired: the consensus's valid-until has passed.
	ErrExpired = errors.New("directory: consensus expired")
	// ErrNotYetValid: the consensus's valid-after lies in the future.
	ErrNotYetValid = errors.New("directory: consensus not yet valid")
)

// ParseConsensus parses a consensus. The result must be verified before use.
func ParseConsensus(b []byte) (*Unverified[Consensus], error) {
	s, err := parseStatus(b, "consensus")
	if err != nil {
		return nil, fmt.Errorf("%w: consensus: %v", ErrBadDocument, err)
	}
	c := &Consensus{Method: s.methods[0], ValidAfter: s.validAfter, FreshUntil: s.freshUntil, ValidUntil: s.validUntil,
		VoteDelay: s.voteDelay, DistDelay: s.distDelay, KnownFlags: s.knownFlags, Params: s.params,
		Authorities: s.sources, MintKeys: s.mintKeys, Models: s.models, Relays: s.relays, Signatures: s.sigs,
		body: s.body, raw: slices.Clone(b), digest: s.digest()}
	return &Unverified[Consensus]{value: c, check: c.verify}, nil
}

func (c *Consensus) verify(trust AuthoritySet, now time.Time) error {
	requirePQ := trust.RequirePQ || c.Param(ParamPQSignatures, 0) == 1
	signers := validSigners(trust, c.Signatures, consensusSigContext, c.digest, requirePQ, now)
	if len(signers) < trust.Threshold() {
		return fmt.Errorf("%w: %d of %d configured authorities signed validly, need %d", ErrNotEnoughSignatures,
			len(signers), len(trust.Authorities), trust.Threshold())
	}
	if !now.Before(c.ValidUntil) {
		return fmt.Errorf("%w: valid-until %s has passed (now %s); fetch a newer consensus", ErrExpired, fmtTime(c.ValidUntil), fmtTime(now))
	}
	if now.Add(MaxClockSkew).Before(c.ValidAfter) {
		return fmt.Errorf("%w: valid-after %s is in the future (now %s)", ErrNotYetValid, fmtTime(c.ValidAfter), fmtTime(now))
	}
	return nil
}

// ParseVote parses a vote. Verify checks that exactly one trusted authority
// voted and signed it; it does not check times (the round does).
func ParseVote(b []byte) (*Unverified[Vote], error) {
	s, err := parseStatus(b, "vote")
	if err != nil {
		return nil, fmt.Errorf("%w: vote: %v", ErrBadDocument, err)
	}
	if len(s.sources) != 1 {
		return nil, fmt.Errorf("%w: vote: want exactly one dir-source", ErrBadDocument)
	}
	v := &Vote{Authority: s.sources[0], Methods: s.methods, Published: s.published, ValidAfter: s.validAfter,
		FreshUntil: s.freshUntil, ValidUntil: s.validUntil, VoteDelay: s.voteDelay, DistDelay: s.distDelay,
		KnownFlags: s.knownFlags, Params: s.params, MintKeys: s.mintKeys, Models: s.models, Relays: s.relays, Signatures: s.sigs,
		raw: slices.Clone(b), digest: s.digest()}
	check := func(trust AuthoritySet, now time.Time) error {
		if trust.Lookup(v.Authority.Fingerprint) == nil {
			return fmt.Errorf("directory: vote from %s, which is not a configured authority", v.Authority.Fingerprint)
		}
		requirePQ := trust.RequirePQ || v.Params[ParamPQSignatures] == 1
		if !validSigners(trust, v.Signatures, voteSigContext, v.digest, requirePQ, now)[v.Authority.Fingerprint] {
			return fmt.Errorf("%w: vote from %s is not signed by it", ErrNotEnoughSignatures, v.Authority.Fingerprint)
		}
		return nil
	}
	return &Unverified[Vote]{value: v, check: check}, nil
}

// SignVote encodes v, signs it (adding ML-DSA-65 when v's parameters enable
// it) and sets its raw form. Authorities do this each period; tools and
// tests use it to build votes offline.
func (s *Signer) SignVote(v *Vote) error {
	return signVote(v, s, v.Params[ParamPQSignatures] == 1)
}

// SignConsensus returns s's signatures on c (ML-DSA-65 added when c's
// parameters enable it).
func (s *Signer) SignConsensus(c *Consensus) ([]Signature, error) {
	return s.sign(consensusSigContext, c.digest, c.Param(ParamPQSignatures, 0) == 1)
}

// WithSignatures returns a copy of c carrying sigs, sorted, with its raw
// form rebuilt. It does not check them: verify the result before use.
func (c *Consensus) WithSignatures(sigs []Signature) (*Consensus, error) {
	return c.withSignatures(sigs)
}
