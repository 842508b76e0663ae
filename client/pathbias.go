package client

// Path bias (as Tor's PathBias, path-spec §7): a guard sees every circuit
// of its client first, so a malicious guard can kill the circuits whose
// later hops are not its colluders and let only the others live, and the
// client, rebuilding, would end up on colluders' paths. The client counts,
// per guard, the circuits whose outcome says something about the guard and
// how many of them succeeded, and stops using a guard whose success rate is
// abnormally low.
//
// A circuit counts as a success when the generation finished on it, or when
// it failed by an authenticated message from a hop beyond the guard (an
// ERROR, an EXTEND_FAILED or a TRUNCATED sealed by hop 1 or later: the guard
// passed the circuit on). It counts as a failure when it failed otherwise (a
// DESTROY from the guard's side, a timeout, an EXTEND the guard itself
// failed), except for capacity refusals and a guard that could not be reached
// at all, which the guard state's retry rules handle. A rate counts only
// after pathBiasMinCircs circuits; the counts are halved at pathBiasScaleAt,
// so old history fades.

import (
	"errors"

	"github.com/unfed/unfed/client/openai"
	"github.com/unfed/unfed/relay/hop"
	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/relay/origin"
)

const (
	pathBiasMinCircs = 20
	pathBiasWarnRate = 0.5
	pathBiasDropRate = 0.3
	pathBiasScaleAt  = 200
)

// pathBiasOff, set only by tests, stops disabling guards
// (TestPathBias's mutation).
var pathBiasOff bool

// circuitOutcome is what a circuit's end says of its guard: whether it
// counts, and whether it succeeded.
func circuitOutcome(err error) (counts, ok bool) {
	if err == nil || errors.Is(err, errDone) {
		return true, true
	}
	var hf *hopFailure
	if errors.As(err, &hf) && hf.Guard {
		return false, false // the guard itself failed: guard-state retry rules
	}
	var he *hop.Error
	var ee *origin.ExtendError
	var de *origin.DestroyedError
	var hopIndex int
	switch {
	case errors.As(err, &he) && he.Code == hop.CodeCapacity:
		return false, false
	case errors.As(err, &he):
		// An ERROR is sealed by its hop; the guard never originates one.
		return true, true
	case errors.As(err, &ee):
		hopIndex = ee.Hop
	case errors.As(err, &de) && de.Remote:
		hopIndex = de.Hop
	case errors.Is(err, openai.ErrContextLength):
		return false, false
	default:
		return true, false
	}
	return true, hopIndex >= 1
}

// RecordCircuit counts a circuit through guard fp (path bias). It returns
// the guard's success rate once it counts, and whether the guard was
// disabled by this circuit.
func (g *Guards) RecordCircuit(fp keys.Fingerprint, ok bool) (rate float64, disabled bool, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i := range g.state.Sampled {
		s := &g.state.Sampled[i]
		if s.Fingerprint != fp.String() {
			continue
		}
		s.Circuits++
		if ok {
			s.Succeeded++
		}
		if s.Circuits >= pathBiasScaleAt {
			s.Circuits /= 2
			s.Succeeded /= 2
		}
		rate = s.Succeeded / s.Circuits
		if s.Circuits >= pathBiasMinCircs && rate < pathBiasDropRate && !s.Disabled && !pathBiasOff {
			s.Disabled, disabled = true, true
		}
		// Saved on a change of state and every few circuits, not each.
		if disabled || int(s.Circuits)%8 == 0 {
			err = g.saveLocked()
		}
		if s.Circuits < pathBiasMinCircs {
			rate = 1
		}
		return rate, disabled, err
	}
	return 1, false, nil
}
