package directory

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/unfed/unfed/compute/model"
	"github.com/unfed/unfed/compute/mpc"
	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/relay/verify"
)

// Fraud proofs (spec/11-verification.md §5): an authority re-executes a
// proof against a compute relay it lists and, when the proof holds, votes
// BadCompute on the relay for badComputeFor. Cheap checks come first, so a
// false or replayed proof costs a decode, a lookup and a signature check;
// only a proof whose inputs match the relay's signed commitment is
// re-executed, one at a time.

// badComputeFor is how long an authority votes BadCompute after a proof.
const badComputeFor = 30 * 24 * time.Hour

// maxJudged bounds the commitment IDs an authority remembers; when full it
// forgets them all (a replay then costs one more re-check).
const maxJudged = 1 << 16

// ShardLoader returns a shard of modelID covering [first, last) for
// re-executing a proof and a function to call when done with it, or an
// error when the authority has no such model.
type ShardLoader func(modelID string, first, last int) (sh *model.Shard, done func(), err error)

// Errors of JudgeProof that say the proof was not considered.
var (
	// ErrProofReplay: a proof of this commitment was judged before.
	ErrProofReplay = errors.New("directory: proof already judged")
	// ErrProofBusy: another proof is being re-executed.
	ErrProofBusy = errors.New("directory: busy re-checking another proof")
	// ErrProofSigner: the signer is no compute relay of that model and
	// range here.
	ErrProofSigner = errors.New("directory: proof signer serves no such shard here")
)

type fraudState struct {
	mu     sync.Mutex // guards judged and bad
	judged map[[32]byte]struct{}
	bad    map[keys.Fingerprint]time.Time // until when BadCompute is voted
	busy   sync.Mutex                     // held while a proof re-executes
}

// StageLoader returns the prepared weights (mpc.Params{}) of the
// confidential stage [first, last) of modelID and the model's layer count
// for re-executing a party's proof, and a function to call when done.
type StageLoader func(modelID string, first, last int) (ps *mpc.PreparedStage, layers int, done func(), err error)

// JudgeProof checks a fraud proof (spec/11 §5.2) and, when it holds,
// records the relay for BadCompute and returns its fingerprint with
// verify.Fraud. An honest re-execution returns verify.Honest.
func (a *Authority) JudgeProof(b []byte, load ShardLoader) (keys.Fingerprint, verify.Verdict, error) {
	t, err := verify.DecodeTicket(b)
	if err != nil {
		return keys.Fingerprint{}, 0, err
	}
	c := t.Commitment
	listed := func(d *Descriptor) bool {
		return d.Compute != nil && d.HasRole(RoleCompute) && d.Compute.Model == c.ModelID &&
			d.Compute.Layers == (LayerRange{First: c.First, Last: c.Last})
	}
	return a.judge(b, c.Identity, listed, c.Verify, c.ID, func() (verify.Verdict, error) {
		sh, done, err := load(c.ModelID, c.First, c.Last)
		if err != nil {
			return 0, fmt.Errorf("directory: proof: %w", err)
		}
		defer done()
		return verify.Check(t, sh)
	}, "model", c.ModelID, "first", c.First, "last", c.Last)
}

// JudgePartyProof is JudgeProof for a party ticket (spec/11 §7.4): the
// signer must be an MPC party (role mpc) of exactly the committed stage,
// and the re-check re-executes its side of the session.
func (a *Authority) JudgePartyProof(b []byte, load StageLoader) (keys.Fingerprint, verify.Verdict, error) {
	t, err := verify.DecodePartyTicket(b)
	if err != nil {
		return keys.Fingerprint{}, 0, err
	}
	c := t.Commitment
	listed := func(d *Descriptor) bool {
		return d.MPC != nil && d.HasRole(RoleMPC) && d.MPC.Model == c.ModelID &&
			d.MPC.Layers == (LayerRange{First: c.First, Last: c.Last})
	}
	return a.judge(b, c.Identity, listed, c.Verify, c.ID, func() (verify.Verdict, error) {
		ps, layers, done, err := load(c.ModelID, c.First, c.Last)
		if err != nil {
			return 0, fmt.Errorf("directory: proof: %w", err)
		}
		defer done()
		return verify.CheckParty(context.Background(), t, ps, layers)
	}, "model", c.ModelID, "first", c.First, "last", c.Last, "role", c.Role.String())
}

// judge is the common path of proofs: the signer's descriptor (listed),
// the signature, one at a time, replays, then the re-execution (check).
func (a *Authority) judge(b []byte, identity [32]byte, listed func(*Descriptor) bool, sigOK func() bool, cid func() [32]byte,
	check func() (verify.Verdict, error), logArgs ...any) (keys.Fingerprint, verify.Verdict, error) {
	fp := keys.FingerprintOf(identity[:])
	a.mu.Lock()
	d := a.descs[fp]
	a.mu.Unlock()
	if d == nil || !listed(d) {
		return fp, 0, ErrProofSigner
	}
	if !sigOK() {
		return fp, 0, verify.ErrSignature
	}
	f := &a.fraud
	if !f.busy.TryLock() {
		return fp, 0, ErrProofBusy
	}
	defer f.busy.Unlock()
	id := cid()
	f.mu.Lock()
	if _, seen := f.judged[id]; seen {
		f.mu.Unlock()
		return fp, 0, ErrProofReplay
	}
	if f.judged == nil || len(f.judged) >= maxJudged {
		f.judged = map[[32]byte]struct{}{}
	}
	f.judged[id] = struct{}{}
	f.mu.Unlock()
	v, err := check()
	if err != nil || v != verify.Fraud {
		return fp, v, err
	}
	f.mu.Lock()
	if f.bad == nil {
		f.bad = map[keys.Fingerprint]time.Time{}
	}
	f.bad[fp] = a.cfg.Now().Add(badComputeFor)
	f.mu.Unlock()
	a.log.Warn("verified fraud proof", append([]any{"relay", fp.String()}, logArgs...)...)
	if a.cfg.OnFraud != nil {
		a.cfg.OnFraud(fp, b)
	}
	return fp, verify.Fraud, nil
}

// badSet returns the relays to vote BadCompute on at now.
func (f *fraudState) badSet(now time.Time) map[keys.Fingerprint]bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[keys.Fingerprint]bool{}
	for fp, until := range f.bad {
		if now.Before(until) {
			out[fp] = true
		} else {
			delete(f.bad, fp)
		}
	}
	return out
}

// BadComputeMethod is the first consensus method that carries BadCompute
// (spec/04 §7.3); methods 1 and 2 drop it, so authorities of this code and
// older ones still agree on a method-2 consensus.
const BadComputeMethod = 3

// knownFlagsFor returns the known-flags of a consensus of method.
func knownFlagsFor(method int) []Flag {
	out := make([]Flag, 0, len(KnownFlags))
	for _, f := range KnownFlags {
		if f != FlagBadCompute || method >= BadComputeMethod {
			out = append(out, f)
		}
	}
	return out
}

// PathProof is where an authority takes fraud proofs (spec/11 §5.2).
const PathProof = "/unfed/dir/v1/proof"

// handleProofPost judges one fraud proof: 200 "fraud FP" when it holds,
// 503 while another proof re-executes, 400 with the reason otherwise.
func (a *Authority) handleProofPost(w http.ResponseWriter, r *http.Request) {
	b, ok := readBody(w, r, verify.MaxTicketBytes)
	if !ok {
		return
	}
	var fp keys.Fingerprint
	var v verify.Verdict
	var err error
	if verify.IsPartyTicket(b) {
		fp, v, err = a.JudgePartyProof(b, a.proofStage)
	} else {
		fp, v, err = a.JudgeProof(b, a.proofShard)
	}
	switch {
	case errors.Is(err, ErrProofBusy):
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
	case err != nil:
		http.Error(w, err.Error(), http.StatusBadRequest)
	case v != verify.Fraud:
		http.Error(w, "directory: the proof re-executes to the committed output", http.StatusBadRequest)
	default:
		fmt.Fprintf(w, "fraud %s\n", fp)
	}
}

// proofStage loads and prepares the confidential stage a party's proof
// names from the model file the configuration gives for its model id.
func (a *Authority) proofStage(modelID string, first, last int) (*mpc.PreparedStage, int, func(), error) {
	for _, m := range a.cfg.Models {
		if m.ID == modelID && m.File != "" {
			if last-first > mpc.MaxStageLayers {
				return nil, 0, nil, fmt.Errorf("stage [%d,%d) longer than %d layers", first, last, mpc.MaxStageLayers)
			}
			ends, err := model.LoadEnds(m.File)
			if err != nil {
				return nil, 0, nil, err
			}
			layers := ends.Config().NLayers
			ends.Close()
			w, err := mpc.LoadStageWeights(m.File, first, last)
			if err != nil {
				return nil, 0, nil, err
			}
			ps, err := mpc.PrepareStage(w, mpc.Params{})
			if err != nil {
				return nil, 0, nil, err
			}
			return ps, layers, func() {}, nil
		}
	}
	return nil, 0, nil, fmt.Errorf("no model file for %s here", modelID)
}

// proofShard loads the shard a proof names from the model file the
// configuration gives for its model id.
func (a *Authority) proofShard(modelID string, first, last int) (*model.Shard, func(), error) {
	for _, m := range a.cfg.Models {
		if m.ID == modelID && m.File != "" {
			sh, err := model.Load(m.File, model.ShardOptions{First: first, Last: last, Threads: 1})
			if err != nil {
				return nil, nil, err
			}
			return sh, func() { sh.Close() }, nil
		}
	}
	return nil, nil, fmt.Errorf("no model file for %s here", modelID)
}
