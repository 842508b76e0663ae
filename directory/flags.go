package directory

import (
	"slices"
	"time"

	"github.com/unfed/unfed/relay/keys"
)

// Network parameters and the flag rules an authority applies when it votes
// (spec/04-directory.md §6). Thresholds are network parameters so that a
// testnet can scale them from days down to seconds.

// Network parameter names.
const (
	// ParamPQSignatures = 1 makes authorities add ML-DSA-65 signatures and
	// verifiers require them.
	ParamPQSignatures = "pq-signatures"
	// ParamStableUptime is the continuous uptime, in seconds, for Stable.
	ParamStableUptime = "stable-uptime"
	// ParamGuardUptime is the continuous uptime, in seconds, for Guard.
	ParamGuardUptime = "guard-uptime"
	// ParamGuardMinTPS is the least advertised tokens/s for Guard.
	ParamGuardMinTPS = "guard-min-tps"
	// ParamDescriptorMaxAge is how old, in seconds, a descriptor may be and
	// still be voted on.
	ParamDescriptorMaxAge = "descriptor-max-age"
	// ParamValidPeriods is how many voting intervals a consensus stays
	// valid: valid-until = valid-after + interval * this.
	ParamValidPeriods = "valid-periods"
	// ParamWeightPerSession converts a relay's claimed sessions into the
	// upper bound of its weight: weight <= sessions * this (KiB/s per
	// session; spec §7.4).
	ParamWeightPerSession = "weight-per-session"
	// ParamWeightUnmeasured is the weight of a relay that too few
	// authorities measured (KiB/s).
	ParamWeightUnmeasured = "weight-unmeasured"
	// ParamWeightCap clips every weight to this multiple of the low median
	// of the measured relays' weights.
	ParamWeightCap = "weight-cap"
	// ParamVerifyFraction is the fraction of compute steps, per mille, a
	// client audits (spec/11-verification.md §3.3).
	ParamVerifyFraction = "verify-fraction"
)

// DefaultParams are the values an authority uses for parameters its
// configuration does not set (production scale).
var DefaultParams = map[string]int64{
	ParamPQSignatures:     0,
	ParamStableUptime:     24 * 3600,
	ParamGuardUptime:      8 * 24 * 3600,
	ParamGuardMinTPS:      10,
	ParamDescriptorMaxAge: 24 * 3600,
	ParamValidPeriods:     3,
	ParamWeightPerSession: 1024,
	ParamWeightUnmeasured: 20,
	ParamWeightCap:        10,
	ParamVerifyFraction:   50,
	ParamPayRequired:      0,
	ParamMintEpoch:        86400,
	ParamPPLNSWindow:      2160,
	ParamPPLNSMaturity:    60,
	ParamStake:            100,
	ParamUnitsPerCredit:   1000,
	ParamChainID:          0,
	ParamUnbond:           4320,
}

// param returns params[name], falling back to DefaultParams.
func param(params map[string]int64, name string) int64 {
	if v, ok := params[name]; ok {
		return v
	}
	return DefaultParams[name]
}

// reach is an authority's reachability history of one relay.
type reach struct {
	// runningSince is when the current run of successful probes began; zero
	// when the last probe failed or none was made.
	runningSince time.Time
	lastProbe    time.Time
	lastErr      string
	// failures counts consecutive failed probes.
	failures int
	// weights are the relay's last measured weights since it was last found
	// unreachable, oldest first, at most measureHistory of them (spec §6.3).
	weights []uint64
}

// measureHistory is how many successful measurements of a relay an
// authority keeps; it votes their low median.
const measureHistory = 5

// measured notes a successful measurement.
func (h *reach) measured(w uint64) {
	if w == 0 {
		return
	}
	if len(h.weights) == measureHistory {
		h.weights = append(h.weights[:0], h.weights[1:]...)
	}
	h.weights = append(h.weights, w)
}

// weight is what the authority votes as the relay's measured weight: the
// low median of its recent measurements while it is Running, else 0.
func (h *reach) weight() uint64 {
	if !h.running() || len(h.weights) == 0 {
		return 0
	}
	return lowMedian(slices.Clone(h.weights))
}

func (h *reach) running() bool { return h != nil && !h.runningSince.IsZero() }

func (h *reach) uptime(now time.Time) time.Duration {
	if !h.running() {
		return 0
	}
	return now.Sub(h.runningSince)
}

// record notes the result of a probe made at t.
func (h *reach) record(t time.Time, err error) {
	h.lastProbe = t
	if err != nil {
		h.runningSince, h.lastErr, h.weights = time.Time{}, err.Error(), nil
		h.failures++
		return
	}
	h.failures = 0
	if h.runningSince.IsZero() {
		h.runningSince = t
	}
	h.lastErr = ""
}

// flagInputs is what the flag rules look at besides the relay itself.
type flagInputs struct {
	now     time.Time
	params  map[string]int64
	models  map[string]Model
	history map[keys.Fingerprint]*reach
	bad     map[keys.Fingerprint]bool // verified fraud proofs (fraud.go)
	// stake, when set, returns the stake a relay has locked on the
	// share-chain (spec/12 §7.1); Compute and MPC then need the stake
	// parameter's amount.
	stake func(keys.Fingerprint) uint64
}

// staked reports whether d may have the Compute or MPC flag as far as its
// stake goes.
func (in *flagInputs) staked(d *Descriptor) bool {
	return in.stake == nil || in.stake(d.Fingerprint()) >= uint64(max(param(in.params, ParamStake), 0))
}

// assignFlags applies the rules of spec §6.2 to one relay:
//
//	Valid    the descriptor verified and is no older than descriptor-max-age
//	Running  the authority's last reachability probe succeeded
//	Stable   Running, continuous uptime >= stable-uptime
//	Guard    Stable, role guard, uptime >= guard-uptime, tokens/s >= guard-min-tps
//	Compute  Running, role compute, the model is in the catalog and the
//	         layer range is one of its shards; with a share-chain, stake
//	MPC      Running, role mpc, the model is in the catalog and the stage's
//	         layer range lies within its layers; with a share-chain, stake
//	Dealer   Running, role dealer, the model is in the catalog
//	BadCompute  the authority verified a fraud proof against the relay
//	         (spec/11 §5.3), whether or not it is Running
//
// The result is sorted.
func assignFlags(d *Descriptor, in *flagInputs) []Flag {
	h := in.history[d.Fingerprint()]
	flags := []Flag{FlagValid}
	if in.bad[d.Fingerprint()] {
		flags = []Flag{FlagBadCompute, FlagValid}
	}
	if !h.running() {
		return flags
	}
	flags = append(flags, FlagRunning)
	up := h.uptime(in.now)
	if up >= time.Duration(param(in.params, ParamStableUptime))*time.Second {
		flags = append(flags, FlagStable)
		if d.HasRole(RoleGuard) && up >= time.Duration(param(in.params, ParamGuardUptime))*time.Second &&
			int64(d.Capacity.TokensPerSec) >= param(in.params, ParamGuardMinTPS) {
			flags = append(flags, FlagGuard)
		}
	}
	if c := d.Compute; c != nil && d.HasRole(RoleCompute) && in.staked(d) {
		if m, ok := in.models[c.Model]; ok && slices.Contains(m.Shards, c.Layers) {
			flags = append(flags, FlagCompute)
		}
	}
	if s := d.MPC; s != nil && d.HasRole(RoleMPC) && in.staked(d) {
		if m, ok := in.models[s.Model]; ok && s.Layers.First >= 0 && s.Layers.First < s.Layers.Last && s.Layers.Last <= m.Layers {
			flags = append(flags, FlagMPC)
		}
	}
	if dl := d.Dealer; dl != nil && d.HasRole(RoleDealer) {
		if _, ok := in.models[dl.Model]; ok {
			flags = append(flags, FlagDealer)
		}
	}
	slices.Sort(flags)
	return flags
}
