package directory

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/bits"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/unfed/unfed/relay/keys"
)

// Authority is one directory authority: it holds relay descriptors and
// reachability history, and runs the voting schedule (spec §9). Locking: mu
// guards every field below it; network I/O never happens under mu.
type Authority struct {
	cfg   AuthorityConfig
	trust AuthoritySet
	self  *TrustedAuthority
	// signer signs votes and consensuses; signerMu guards it (the signing
	// key rotates, signingkey.go).
	signerMu sync.Mutex
	signer   *Signer
	models   []Model
	log      *slog.Logger
	metrics  *metrics
	store    *Store
	// chronicle remembers recent consensuses for the explorer.
	chronicle chronicle

	uploads *sourceLimiter // descriptor uploads per source address

	upMu     sync.Mutex // guards inFlight
	inFlight map[keys.Fingerprint]bool
	fraud    fraudState // verified fraud proofs (fraud.go)

	mu      sync.Mutex
	descs   map[keys.Fingerprint]*Descriptor
	arrived map[keys.Fingerprint]time.Time // when each held descriptor arrived
	history map[keys.Fingerprint]*reach
	// probing holds the relays whose patient probe outlasted its phase
	// and is still running (PatientProber).
	probing map[keys.Fingerprint]bool
	rounds  map[int64]*round // by valid-after, Unix seconds; at most a few
	current *Consensus       // the latest published consensus
}

// round is the state of one voting period, named by its valid-after.
type round struct {
	validAfter time.Time
	vote       *Vote                            // ours
	votes      map[keys.Fingerprint]*Vote       // verified, ours included
	cons       *Consensus                       // computed, unsigned
	sigs       map[keys.Fingerprint][]Signature // verified signatures on cons
	early      []*detachedSigs                  // received before cons was computed
	published  bool
}

// NewAuthority loads the authority's keys from cfg.DataDir (creating them on
// first start) and its last consensus, and checks the configuration.
func NewAuthority(cfg AuthorityConfig, logger *slog.Logger, reg *prometheus.Registry) (*Authority, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	trust, err := NewAuthoritySet(cfg.Authorities, cfg.RequirePQ)
	if err != nil {
		return nil, err
	}
	signer, err := loadSigner(cfg, logger)
	if err != nil {
		return nil, err
	}
	a := &Authority{cfg: cfg, trust: trust, signer: signer, log: logger,
		descs: map[keys.Fingerprint]*Descriptor{}, arrived: map[keys.Fingerprint]time.Time{},
		inFlight: map[keys.Fingerprint]bool{}, uploads: newSourceLimiter(cfg.UploadRate, cfg.UploadBurst),
		history: map[keys.Fingerprint]*reach{}, probing: map[keys.Fingerprint]bool{}, rounds: map[int64]*round{}}
	if a.self = trust.Lookup(signer.fingerprint()); a.self == nil {
		return nil, fmt.Errorf("directory: this authority (%s) is not in the authorities list", signer.fingerprint())
	}
	idPub := &keys.Identity{Public: a.self.Identity}
	if a.self.MLDSA != nil || cfg.RequirePQ || param(cfg.Params, ParamPQSignatures) == 1 {
		if a.signer.MLDSA, err = LoadOrCreateMLDSAKey(cfg.DataDir, nil); err != nil {
			return nil, err
		}
		pub, _ := a.signer.MLDSA.Public().(*mldsa65.PublicKey)
		if a.self.MLDSA == nil {
			return nil, fmt.Errorf("directory: PQ signatures are on but this authority's config entry has no mldsa65 key; its key is %s",
				EntryFor(a.self.Name, a.self.Address, idPub, pub).MLDSA65)
		}
		if !a.self.MLDSA.Equal(pub) {
			return nil, errors.New("directory: the mldsa65 key configured for this authority is not the one in its data directory")
		}
	}
	for _, mc := range cfg.Models {
		m, err := mc.model()
		if err != nil {
			return nil, err
		}
		for _, o := range a.models {
			if m.Name != "" && strings.EqualFold(o.Name, m.Name) {
				return nil, fmt.Errorf("directory: models %s and %s share the name %q", o.ID, m.ID, m.Name)
			}
		}
		a.models = append(a.models, m)
	}
	slices.SortFunc(a.models, func(x, y Model) int { return compareStr(x.ID, y.ID) })
	if a.metrics, err = newMetrics(reg); err != nil {
		return nil, err
	}
	a.store = &Store{Dir: cfg.DataDir}
	if c, err := a.store.Load(trust, cfg.Now()); err == nil {
		a.current = c
	} else if !errors.Is(err, errNoStoredConsensus) {
		logger.Warn("stored consensus not used", "err", err)
	}
	return a, nil
}

// Fingerprint returns the authority's fingerprint.
func (a *Authority) Fingerprint() keys.Fingerprint { return a.self.Fingerprint }

// Current returns the latest consensus this authority published, or nil.
func (a *Authority) Current() *Consensus {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.current
}

// AcceptDescriptor verifies an uploaded descriptor and keeps it when it is
// newer than the one held for that relay (spec §3.3, §3.5). Errors wrap
// ErrBadDescriptor.
func (a *Authority) AcceptDescriptor(b []byte) (*Descriptor, error) {
	now := a.cfg.Now()
	d, err := ParseDescriptor(b, now)
	if err == nil {
		maxAge := time.Duration(param(a.cfg.Params, ParamDescriptorMaxAge)) * time.Second
		if d.Published.Before(now.Add(-maxAge)) {
			err = fmt.Errorf("%w: stale: published %s, older than this network's %s", ErrBadDescriptor, fmtTime(d.Published), maxAge)
		} else if d.Published.After(now.Add(MaxDescriptorSkew)) {
			err = fmt.Errorf("%w: published %s is more than %s ahead of this authority's clock (%s); fix the relay's clock",
				ErrBadDescriptor, fmtTime(d.Published), MaxDescriptorSkew, fmtTime(now))
		}
	}
	if err != nil {
		a.metrics.descriptors.WithLabelValues("rejected").Inc()
		return nil, err
	}
	fp := d.Fingerprint()
	a.mu.Lock()
	defer a.mu.Unlock()
	reject := func(err error) (*Descriptor, error) {
		a.metrics.descriptors.WithLabelValues("rejected").Inc()
		return nil, err
	}
	// A held descriptor counts as published no later than it arrived, so one
	// dated ahead (within the skew) does not block the relay's next ones.
	if old := a.descs[fp]; old != nil && minTime(old.Published, a.arrived[fp]).After(d.Published) {
		return reject(fmt.Errorf("%w: older than the descriptor held (published %s)", ErrBadDescriptor, fmtTime(old.Published)))
	}
	if a.descs[fp] == nil && len(a.descs) >= a.cfg.MaxRelays {
		return reject(fmt.Errorf("%w: this authority holds its limit of %d relays", ErrBadDescriptor, a.cfg.MaxRelays))
	}
	if ip := a.crowdedAddrLocked(d); ip != "" {
		return reject(fmt.Errorf("%w: this authority holds its limit of %d relays at %s", ErrBadDescriptor, a.cfg.MaxRelaysPerAddr, ip))
	}
	a.descs[fp] = d
	a.arrived[fp] = now
	if a.history[fp] == nil {
		a.history[fp] = &reach{}
	}
	a.metrics.descriptors.WithLabelValues("accepted").Inc()
	a.metrics.relays.Set(float64(len(a.descs)))
	return d, nil
}

// crowdedAddrLocked returns an IP of d's transports at which the authority
// already holds MaxRelaysPerAddr other relays, or "". Called with mu held.
func (a *Authority) crowdedAddrLocked(d *Descriptor) string {
	if a.cfg.MaxRelaysPerAddr < 0 {
		return ""
	}
	fp := d.Fingerprint()
	for _, ip := range descIPs(d) {
		n := 0
		for ofp, o := range a.descs {
			if ofp != fp && slices.Contains(descIPs(o), ip) {
				n++
			}
		}
		if n >= a.cfg.MaxRelaysPerAddr {
			return ip
		}
	}
	return ""
}

// descIPs returns the distinct hosts of d's transports.
func descIPs(d *Descriptor) []string {
	var out []string
	for _, t := range d.Transports {
		if h, _, err := net.SplitHostPort(t.Addr); err == nil && !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	return out
}

func minTime(a, b time.Time) time.Time {
	if b.IsZero() || a.Before(b) {
		return a
	}
	return b
}

// forgetLocked drops everything held about fp. Called with mu held.
func (a *Authority) forgetLocked(fp keys.Fingerprint) {
	delete(a.descs, fp)
	delete(a.arrived, fp)
	delete(a.history, fp)
}

// Descriptor returns the descriptor held for fp, or nil.
func (a *Authority) Descriptor(fp keys.Fingerprint) *Descriptor {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.descs[fp]
}

// probeAll drops expired descriptors and probes every remaining relay,
// recording the results in the reachability history. With a Measurer it
// then measures the reachable relays due in the period starting at va
// (spec §6.3), in a phase of its own so that measuring cannot delay or
// fail a probe: every MeasureEvery-th period for each relay, spread over
// the periods by fingerprint, and any relay without a measurement at once;
// the others start spread over the first half of their phase
// (measureOffset). Each phase takes at most phase.
func (a *Authority) probeAll(ctx context.Context, va time.Time, phase time.Duration) {
	now := a.cfg.Now()
	maxAge := time.Duration(param(a.cfg.Params, ParamDescriptorMaxAge)) * time.Second
	a.mu.Lock()
	var todo, patient []*Descriptor
	var patience []time.Duration
	pp, _ := a.cfg.Prober.(PatientProber)
	for fp, d := range a.descs {
		if d.Published.Before(now.Add(-maxAge)) {
			a.forgetLocked(fp)
			continue
		}
		if a.probing[fp] {
			continue // its patient probe of an earlier phase still runs
		}
		if pp != nil {
			if p := pp.Patience(d); p > 0 {
				patient, patience = append(patient, d), append(patience, p)
				a.probing[fp] = true
				continue
			}
		}
		todo = append(todo, d)
	}
	a.metrics.relays.Set(float64(len(a.descs)))
	a.mu.Unlock()

	results := make([]error, len(todo), len(todo)+len(patient))
	early := a.probePatient(ctx, patient, patience, phase)
	a.each(ctx, todo, 32, phase, func(ctx context.Context, i int) { results[i] = a.cfg.Prober.Probe(ctx, todo[i]) })
	// The patient probes that ended within the phase count with the
	// others; the rest record their result when they end.
	for _, r := range early.collect() {
		todo, results = append(todo, r.d), append(results, r.err)
	}
	t := a.cfg.Now()
	period := uint64(va.Unix()) / uint64(a.cfg.Interval/time.Second)
	var measure []*Descriptor
	var at []time.Duration
	a.mu.Lock()
	for i, d := range todo {
		fp := d.Fingerprint()
		if a.recordLocked(d, t, results[i]) && results[i] == nil && measureDue(period, fp, a.cfg.MeasureEvery, a.history[fp]) {
			measure = append(measure, d)
			var off time.Duration
			if h := a.history[fp]; h != nil && len(h.weights) > 0 {
				off = measureOffset(a.self.Fingerprint, fp, period, phase/2)
			}
			at = append(at, off)
		}
	}
	a.mu.Unlock()

	measurer, ok := a.cfg.Prober.(Measurer)
	if !ok {
		return
	}
	ms := make([]Measurement, len(measure))
	errs := make([]error, len(measure))
	for i := range errs {
		errs[i] = errNotStarted
	}
	a.eachAt(ctx, measure, at, measureParallel, phase, func(ctx context.Context, i int) {
		ctx, cancel := context.WithTimeout(ctx, measureTimeout)
		defer cancel()
		ms[i], errs[i] = measurer.Measure(ctx, measure[i])
	})
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, d := range measure {
		m, w := ms[i], ms[i].Weight()
		a.metrics.measureBytes.Add(float64(m.Sent + m.Received))
		if errs[i] != nil || w == 0 {
			a.metrics.unmeasured.Inc()
			a.log.Debug("relay not measured", "fingerprint", d.Fingerprint().String(), "err", errs[i])
			continue
		}
		a.metrics.measured.Inc()
		a.log.Debug("relay measured", "fingerprint", d.Fingerprint().String(), "weight", w, "bytes", m.Bytes, "elapsed", m.Elapsed)
		if h := a.history[d.Fingerprint()]; h != nil && h.running() {
			h.measured(w)
		}
	}
}

// recordLocked notes the result of a probe of d that ended at t, and
// reports whether the authority still holds d: a relay unreachable
// DropUnreachableAfter times in a row is forgotten. Called with mu held.
func (a *Authority) recordLocked(d *Descriptor, t time.Time, err error) bool {
	h := a.history[d.Fingerprint()]
	if h == nil {
		return false // forgotten meanwhile
	}
	if err != nil {
		a.metrics.probeFailures.Inc()
		a.log.Debug("relay unreachable", "fingerprint", d.Fingerprint().String(), "err", err)
	}
	h.record(t, err)
	if h.failures >= a.cfg.DropUnreachableAfter {
		// Bound the store: an unreachable relay (or a Sybil naming an
		// address it does not serve) is forgotten; a real one uploads
		// again.
		a.forgetLocked(d.Fingerprint())
		return false
	}
	return true
}

// patientResult is the result of one patient probe.
type patientResult struct {
	d   *Descriptor
	err error
}

// patientProbes are the patient probes of one phase.
type patientProbes struct {
	end   time.Time // the phase's end
	mu    sync.Mutex
	done  []patientResult
	left  int
	over  bool          // the phase ended: late results are recorded by their probe
	ended chan struct{} // closed when the last probe ends within the phase
}

// probePatient starts a probe of each of ds, each within the phase plus its
// patience, in the background (one goroutine each: a relay has at most one
// patient probe running, so they are as many as the relays that need them).
// A probe that ends after the phase records its own result and clears the
// relay's probing mark; one that ends within it is handed to collect.
func (a *Authority) probePatient(ctx context.Context, ds []*Descriptor, patience []time.Duration, phase time.Duration) *patientProbes {
	ps := &patientProbes{end: time.Now().Add(phase), left: len(ds), ended: make(chan struct{})}
	if len(ds) == 0 {
		close(ps.ended)
	}
	for i, d := range ds {
		go func() {
			pctx, cancel := context.WithTimeout(ctx, phase+patience[i])
			err := a.cfg.Prober.Probe(pctx, d)
			cancel()
			ps.mu.Lock()
			over := ps.over
			if !over {
				ps.done = append(ps.done, patientResult{d, err})
				if ps.left--; ps.left == 0 {
					close(ps.ended)
				}
			}
			ps.mu.Unlock()
			a.mu.Lock()
			delete(a.probing, d.Fingerprint())
			if over && a.descs[d.Fingerprint()] == d {
				// (A result for a descriptor since replaced says nothing
				// of the new one's addresses.)
				a.recordLocked(d, a.cfg.Now(), err)
			}
			a.mu.Unlock()
		}()
	}
	return ps
}

// collect waits until the phase's end at most for the probes and returns
// those that ended; from then on the others record their own results.
func (ps *patientProbes) collect() []patientResult {
	t := time.NewTimer(time.Until(ps.end))
	select {
	case <-ps.ended:
	case <-t.C:
	}
	t.Stop()
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.over = true
	return ps.done
}

// Measurement bounds (spec §6.3).
const (
	// measureTimeout bounds one measurement: a relay that cannot take the
	// exchange's 520,192 bytes in it is slower than 50 KiB/s, in the range
	// of the default weight of unmeasured relays.
	measureTimeout = 10 * time.Second
	// measureParallel is how many relays are measured at once. They share
	// the authority's bandwidth, so fewer keep fast relays apart; more fit
	// more relays in the phase.
	measureParallel = 8
)

// each runs f(ctx, i) for every element of ds, at most parallel at once,
// within timeout.
func (a *Authority) each(ctx context.Context, ds []*Descriptor, parallel int, timeout time.Duration, f func(ctx context.Context, i int)) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i := range ds {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			f(ctx, i)
		}()
	}
	wg.Wait()
}

// eachAt is each, except that f(ctx, i) starts no earlier than at[i] after
// eachAt is called; an element whose time has not come when timeout ends
// is not run.
func (a *Authority) eachAt(ctx context.Context, ds []*Descriptor, at []time.Duration, parallel int, timeout time.Duration, f func(ctx context.Context, i int)) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	order := make([]int, len(ds))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(i, j int) int { return cmp.Compare(at[i], at[j]) })
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, i := range order {
		if d := time.Until(start.Add(at[i])); d > 0 && spreadMeasurements {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return
			}
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			f(ctx, i)
		}()
	}
}

// spreadMeasurements is false only in the test that shows what the spread
// test catches without it.
var spreadMeasurements = true

// errNotStarted is the error of a measurement whose time in the phase had
// not come when the phase ended.
var errNotStarted = errors.New("directory: the measuring phase ended before this measurement's time")

// measureOffset is how far into the measuring phase an authority starts to
// measure a relay it holds a measurement of (spec §6.3): a hash of the
// authority, the relay and the period, scaled to [0, spread). Its
// measurements are spread over the phase's first half instead of leaving
// in one burst, and the authorities measure one relay at different
// moments, not all at once (each would time the others' padding with its
// own).
func measureOffset(auth, relay keys.Fingerprint, period uint64, spread time.Duration) time.Duration {
	if spread <= 0 {
		return 0
	}
	h := sha256.New()
	h.Write([]byte("unfed-measure-offset-v1"))
	h.Write(auth[:])
	h.Write(relay[:])
	h.Write(binary.BigEndian.AppendUint64(nil, period))
	hi, _ := bits.Mul64(binary.BigEndian.Uint64(h.Sum(nil)), uint64(spread))
	return time.Duration(hi)
}

// measureDue reports whether a relay is measured in the given period (the
// number of intervals since the epoch): every every-th period, at an
// offset set by its fingerprint, or whenever the authority holds no
// measurement of it.
func measureDue(period uint64, fp keys.Fingerprint, every int, h *reach) bool {
	if h == nil || len(h.weights) == 0 || every <= 1 {
		return true
	}
	return (period+binary.BigEndian.Uint64(fp[:8]))%uint64(every) == 0
}

// buildVote makes and signs this authority's vote for the period starting
// at validAfter.
func (a *Authority) buildVote(validAfter time.Time) (*Vote, error) {
	now := a.cfg.Now()
	a.mu.Lock()
	models := map[string]Model{}
	for _, m := range a.models {
		models[m.ID] = m
	}
	in := &flagInputs{now: now, params: a.cfg.Params, models: models, history: a.history, bad: a.fraud.badSet(now), stake: a.cfg.StakeOf}
	relays := make([]RouterStatus, 0, len(a.descs))
	for _, fp := range slices.SortedFunc(maps.Keys(a.descs), compareFP) {
		d := a.descs[fp]
		flags := assignFlags(d, in)
		if !slices.Contains(flags, FlagRunning) {
			continue // votes list only relays this authority reached (spec §4)
		}
		rs := StatusOf(d, flags)
		rs.Measured = a.history[fp].weight()
		relays = append(relays, rs)
	}
	a.mu.Unlock()
	periods := param(a.cfg.Params, ParamValidPeriods)
	if periods < 1 {
		periods = 1
	}
	v := &Vote{
		Authority: DirSource{Name: a.self.Name, Fingerprint: a.self.Fingerprint, Address: a.self.Address},
		Methods:   slices.Clone(ConsensusMethods), Published: now.UTC().Truncate(time.Second),
		ValidAfter: validAfter, FreshUntil: validAfter.Add(a.cfg.Interval),
		ValidUntil: validAfter.Add(a.cfg.Interval * time.Duration(periods)),
		VoteDelay:  a.cfg.VoteDelay, DistDelay: a.cfg.DistDelay,
		KnownFlags: slices.Clone(KnownFlags), Params: maps.Clone(a.cfg.Params), Models: a.models, Relays: relays,
	}
	if v.Params == nil {
		v.Params = map[string]int64{}
	}
	if a.cfg.MintKeys != nil {
		ks, err := checkMintKeys(a.cfg.MintKeys(now), a.self.Fingerprint)
		if err != nil {
			return nil, err
		}
		v.MintKeys = ks
	}
	pq := a.cfg.RequirePQ || param(a.cfg.Params, ParamPQSignatures) == 1
	signer, err := a.signerAt(now)
	if err != nil {
		return nil, err
	}
	if err := signVote(v, signer, pq); err != nil {
		return nil, err
	}
	return v, nil
}

// roundFor returns the state of the period starting at va, creating it; it
// forgets periods more than two intervals old. Called with mu held.
func (a *Authority) roundFor(va time.Time) *round {
	r := a.rounds[va.Unix()]
	if r == nil {
		r = &round{validAfter: va, votes: map[keys.Fingerprint]*Vote{}, sigs: map[keys.Fingerprint][]Signature{}}
		a.rounds[va.Unix()] = r
	}
	for k := range a.rounds {
		if k < va.Unix()-int64(2*a.cfg.Interval/time.Second) {
			delete(a.rounds, k)
		}
	}
	return r
}

// acceptVote verifies a vote from another authority (or ours) and files it
// under its period. Only the current and next periods are accepted.
func (a *Authority) acceptVote(b []byte) (*Vote, error) {
	u, err := ParseVote(b)
	if err != nil {
		return nil, err
	}
	v, err := u.Verify(a.trust, a.cfg.Now())
	if err != nil {
		return nil, err
	}
	next := a.nextValidAfter(a.cfg.Now())
	if !v.ValidAfter.Equal(next) && !v.ValidAfter.Equal(next.Add(-a.cfg.Interval)) {
		return nil, fmt.Errorf("directory: vote for %s, but the periods being voted on start at %s", fmtTime(v.ValidAfter), fmtTime(next))
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.roundFor(v.ValidAfter)
	if r.cons != nil {
		return nil, fmt.Errorf("directory: vote for %s arrived after the consensus was computed", fmtTime(v.ValidAfter))
	}
	r.votes[v.Authority.Fingerprint] = v
	a.metrics.votes.Inc()
	return v, nil
}

// acceptSignatures verifies detached signatures and adds the valid ones to
// their round. Signatures on a digest other than ours are refused.
func (a *Authority) acceptSignatures(b []byte) (int, error) {
	d, err := parseDetachedSigs(b)
	if err != nil {
		return 0, fmt.Errorf("%w: signatures: %v", ErrBadDocument, err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.rounds[d.validAfter.Unix()]
	if r == nil {
		return 0, fmt.Errorf("directory: signatures for %s, a period this authority is not voting on", fmtTime(d.validAfter))
	}
	if r.cons == nil {
		if len(r.early) >= 2*len(a.trust.Authorities) {
			return 0, errors.New("directory: too many early signature documents")
		}
		r.early = append(r.early, d)
		return 0, nil
	}
	return a.addSigsLocked(r, d)
}

func (a *Authority) addSigsLocked(r *round, d *detachedSigs) (int, error) {
	if d.digest != r.cons.digest {
		return 0, fmt.Errorf("directory: signatures on consensus digest %x, ours is %x", d.digest[:6], r.cons.digest[:6])
	}
	pq := a.trust.RequirePQ || r.cons.Param(ParamPQSignatures, 0) == 1
	signers := validSigners(a.trust, d.sigs, consensusSigContext, d.digest, pq, a.cfg.Now())
	added := 0
	for fp := range signers {
		if _, ok := r.sigs[fp]; ok {
			continue
		}
		for _, s := range d.sigs {
			if s.Authority == fp {
				r.sigs[fp] = append(r.sigs[fp], s)
			}
		}
		added++
	}
	if added > 0 && r.published {
		a.publishLocked(r)
	}
	return added, nil
}

// computeConsensus computes and signs the consensus from the round's votes.
func (a *Authority) computeConsensus(va time.Time) (*detachedSigs, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.roundFor(va)
	votes := slices.Collect(maps.Values(r.votes))
	c, err := ComputeConsensus(votes, a.trust)
	if err != nil {
		a.metrics.consensusFailures.Inc()
		return nil, err
	}
	pq := a.trust.RequirePQ || c.Param(ParamPQSignatures, 0) == 1
	signer, err := a.signerAt(a.cfg.Now())
	if err != nil {
		return nil, err
	}
	own, err := signer.sign(consensusSigContext, c.digest, pq)
	if err != nil {
		return nil, err
	}
	r.cons = c
	r.sigs[a.self.Fingerprint] = own
	for _, d := range r.early {
		if _, err := a.addSigsLocked(r, d); err != nil {
			a.log.Warn("early signatures rejected", "err", err)
		}
	}
	r.early = nil
	return &detachedSigs{validAfter: va, digest: c.digest, sigs: slices.Clone(own)}, nil
}

// signaturesFor returns every verified signature held for period va.
func (a *Authority) signaturesFor(va time.Time) *detachedSigs {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.rounds[va.Unix()]
	if r == nil || r.cons == nil {
		return nil
	}
	d := &detachedSigs{validAfter: va, digest: r.cons.digest}
	for _, s := range r.sigs {
		d.sigs = append(d.sigs, s...)
	}
	return d
}

// publish makes the round's consensus current if enough authorities signed it.
func (a *Authority) publish(va time.Time) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.rounds[va.Unix()]
	if r == nil || r.cons == nil {
		a.metrics.consensusFailures.Inc()
		return fmt.Errorf("directory: no consensus computed for %s", fmtTime(va))
	}
	if len(r.sigs) < a.trust.Threshold() {
		a.metrics.consensusFailures.Inc()
		return fmt.Errorf("directory: consensus for %s has %d signatures, needs %d", fmtTime(va), len(r.sigs), a.trust.Threshold())
	}
	r.published = true
	return a.publishLocked(r)
}

func (a *Authority) publishLocked(r *round) error {
	var sigs []Signature
	for _, s := range r.sigs {
		sigs = append(sigs, s...)
	}
	c, err := r.cons.withSignatures(sigs)
	if err != nil {
		return err
	}
	a.current = c
	a.chronicle.record(c)
	a.metrics.published.Inc()
	a.metrics.signatures.Set(float64(len(r.sigs)))
	if err := a.store.Save(c.Raw()); err != nil {
		a.log.Warn("saving consensus", "err", err)
	}
	return nil
}
