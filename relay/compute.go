package relay

// The compute and MPC roles (spec/09-relay-operation.md §5): load what the
// relay serves from the model file and make the hop.Service the circuit
// switch hands circuits to. The model id is compute/model's manifest id, the
// same id authorities list in the catalog.

import (
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/unfed/unfed/compute/model"
	"github.com/unfed/unfed/compute/mpc"
	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/relay/hop"
)

// served is what the compute side of a relay loaded.
type served struct {
	modelID string
	svc     *hop.Service
	shard   *model.Shard // nil for an MPC party
}

func (s *served) close() {
	if s == nil {
		return
	}
	s.svc.Close()
	if s.shard != nil {
		s.shard.Close()
	}
}

// loadCompute loads the shard (role compute) or block-0 weights (role mpc)
// and starts the hop service. It returns nil, nil for a relay with neither
// role.
func loadCompute(cfg *Config, st *settings, reg prometheus.Registerer, log *slog.Logger) (*served, error) {
	isCompute, isMPC := st.has(directory.RoleCompute), st.has(directory.RoleMPC)
	if !isCompute && !isMPC {
		return nil, nil
	}
	c := &cfg.Compute
	if c.Tokenizer != "" {
		if _, err := os.Stat(c.Tokenizer); err != nil {
			return nil, fmt.Errorf("relay: compute.tokenizer: %w", err)
		}
	}
	man, err := model.ComputeManifest(c.Model, 0)
	if err != nil {
		return nil, fmt.Errorf("relay: model manifest: %w", err)
	}
	s := &served{modelID: man.IDHex()}
	hc := hop.Config{ModelID: s.modelID, AllowPlain: c.AllowPlainEmbed, Logger: log}
	if hc.Observe, err = hopObserver(reg); err != nil {
		return nil, fmt.Errorf("relay: hop metrics: %w", err)
	}
	if isMPC {
		if hc.MPCStepDone, err = mpcStepMetrics(reg); err != nil {
			return nil, fmt.Errorf("relay: mpc metrics: %w", err)
		}
	}
	if isCompute {
		if c.Last > man.Config.NLayers {
			return nil, fmt.Errorf("relay: compute layer range [%d,%d) exceeds the model's %d layers", c.First, c.Last, man.Config.NLayers)
		}
		s.shard, err = model.Load(c.Model, model.ShardOptions{First: c.First, Last: c.Last, Threads: c.Threads,
			Limits: model.Limits{MaxSessions: c.MaxSessions, MaxContext: c.MaxContext, MemoryBudget: c.MemoryBudget}})
		if err != nil {
			return nil, fmt.Errorf("relay: load shard: %w", err)
		}
		hc.Shard = s.shard
	}
	if isMPC {
		w, err := mpc.LoadWeights(c.Model)
		if err != nil {
			if s.shard != nil {
				s.shard.Close()
			}
			return nil, err
		}
		role := hop.RoleMPCA
		if strings.EqualFold(cfg.MPC.Party, "B") {
			role = hop.RoleMPCB
		}
		hc.Party = &hop.PartyConfig{Role: role, Weights: w, MaxSessions: c.MaxSessions,
			Options: mpc.Options{MaxContext: c.MaxContext, NoiseSigma: cfg.MPC.NoiseSigma, Logger: log,
				PrecomputeBytes: max(cfg.MPC.PrecomputeMiB, -1) << 20}}
	}
	if s.svc, err = hop.NewService(hc); err != nil {
		if s.shard != nil {
			s.shard.Close()
		}
		return nil, fmt.Errorf("relay: %w", err)
	}
	if hc.Party != nil {
		// The service keeps only the party's fixed-point form; the float
		// weights (the whole embedding, 545 MB for qwen2.5-0.5B) are garbage
		// now. Return them to the system at once instead of when the
		// scavenger gets to them, so the relay's resident size is what it
		// serves with.
		hc.Party.Weights = nil
		debug.FreeOSMemory()
	}
	return s, nil
}
