package relay

// The compute, party and dealer roles (spec/09-relay-operation.md §5): load
// what the relay serves from the model file and make the hop.Service the
// circuit switch hands circuits to. The model id is compute/model's manifest
// id, the same id authorities list in the catalog.

import (
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/unfed/unfed/compute/model"
	"github.com/unfed/unfed/compute/mpc"
	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/relay/hop"
	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/relay/verifier"
)

// served is what the compute side of a relay loaded.
type served struct {
	modelID string
	svc     *hop.Service
	shard   *model.Shard // nil without role compute
	ver     *verifier.Verifier
	vshards *shardCache // the verifier's
}

func (s *served) close() {
	if s == nil {
		return
	}
	s.svc.Close()
	if s.shard != nil {
		s.shard.Close()
	}
	if s.ver != nil {
		s.ver.Close()
		s.vshards.close()
	}
}

// loadCompute loads what the relay's roles need — the shard (compute), the
// stage's weights in fixed point (mpc), the model's shape (dealer) — and
// starts the hop service. capture, when set, records every message the
// service decrypts or sends (audit_capture). It returns nil, nil for a
// relay with none of these roles.
func loadCompute(cfg *Config, st *settings, reg prometheus.Registerer, log *slog.Logger, capture func(hop.CaptureDir, []byte), id *keys.Identity, cons *consensusFunc, pay hop.Payments) (*served, error) {
	isCompute, isMPC, isDealer := st.has(directory.RoleCompute), st.has(directory.RoleMPC), st.has(directory.RoleDealer)
	isVerifier := st.has(directory.RoleVerifier)
	if !isCompute && !isMPC && !isDealer && !isVerifier {
		return nil, nil
	}
	c := &cfg.Compute
	if c.Tokenizer != "" {
		if _, err := os.Stat(c.Tokenizer); err != nil {
			return nil, fmt.Errorf("relay: compute.tokenizer: %w", err)
		}
	}
	// The manifest hashes every tensor for the model id; it keeps none of
	// them, so a dealer still holds no weights.
	man, err := model.ComputeManifest(c.Model, 0)
	if err != nil {
		return nil, fmt.Errorf("relay: model manifest: %w", err)
	}
	if (isCompute || isMPC) && c.Last > man.Config.NLayers {
		return nil, fmt.Errorf("relay: layer range [%d,%d) exceeds the model's %d layers", c.First, c.Last, man.Config.NLayers)
	}
	s := &served{modelID: man.IDHex()}
	hc := hop.Config{ModelID: s.modelID, AllowPlain: !c.RefuseTokens, Logger: log, Capture: capture, Identity: id, Payments: pay}
	if man.Tokenizer != nil {
		// The client bundle (spec/06 §5), built from the model file on the
		// first BUNDLE_GET and kept: a relay that serves a model serves
		// what a client needs to use it.
		path := c.Model
		hc.Bundle = sync.OnceValues(func() ([]byte, error) {
			b, _, err := model.BundleBytes(path)
			return b, err
		})
	}
	if hc.Observe, err = hopObserver(reg); err != nil {
		return nil, fmt.Errorf("relay: hop metrics: %w", err)
	}
	if isMPC {
		if hc.MPCStepDone, err = mpcStepMetrics(reg); err != nil {
			return nil, fmt.Errorf("relay: mpc metrics: %w", err)
		}
	}
	if isDealer {
		if hc.PrepDealt, err = dealerMetrics(reg); err != nil {
			return nil, fmt.Errorf("relay: dealer metrics: %w", err)
		}
		hc.Dealer = &hop.DealerConfig{Model: man.Config, MaxSessions: c.MaxSessions, MaxContext: c.MaxContext}
	}
	if isMPC {
		w, err := mpc.LoadStageWeights(c.Model, c.First, c.Last)
		if err != nil {
			return nil, fmt.Errorf("relay: stage weights: %w", err)
		}
		ps, err := mpc.PrepareStage(w, mpc.Params{})
		if err != nil {
			return nil, fmt.Errorf("relay: stage weights: %w", err)
		}
		hc.Party = &hop.PartyConfig{Stage: ps, Layers: man.Config.NLayers, MaxSessions: c.MaxSessions,
			MaxPending: cfg.MPC.MaxPendingMiB << 20,
			Options: mpc.Options{MaxContext: c.MaxContext, Logger: log,
				PrecomputeBytes: max(cfg.MPC.PrecomputeMiB, -1) << 20}}
		// The service uses only the fixed-point form; the float weights
		// are garbage now. Return them to the system at once instead of
		// when the scavenger gets to them, so the relay's resident size is
		// what it serves with.
		debug.FreeOSMemory()
	}
	if isCompute {
		s.shard, err = model.Load(c.Model, model.ShardOptions{First: c.First, Last: c.Last, Threads: c.Threads,
			Limits: model.Limits{MaxSessions: c.MaxSessions, MaxContext: c.MaxContext, MemoryBudget: c.MemoryBudget}})
		if err != nil {
			return nil, fmt.Errorf("relay: load shard: %w", err)
		}
		hc.Shard = s.shard
		if hc.ComputeDone, err = computeMetrics(reg, c.First, c.Last); err != nil {
			s.shard.Close()
			return nil, fmt.Errorf("relay: compute metrics: %w", err)
		}
	}
	if isVerifier {
		if s.ver, s.vshards, err = newVerifier(cfg, s.modelID, cons, log); err != nil {
			return nil, err
		}
		hc.Tickets = s.ver
	}
	if s.svc, err = hop.NewService(hc); err != nil {
		if s.shard != nil {
			s.shard.Close()
		}
		if s.ver != nil {
			s.ver.Close()
		}
		return nil, fmt.Errorf("relay: %w", err)
	}
	return s, nil
}
