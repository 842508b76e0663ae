package relay

// The verifier role (spec/11-verification.md §3.5, §4): the relay takes
// tickets over its circuits (hop.Service with a ticket sink), checks the
// signer against the consensus its directory cache keeps, re-executes with
// relay/verifier and posts fraud proofs to the authorities.

import (
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/unfed/unfed/compute/model"
	"github.com/unfed/unfed/compute/mpc"
	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/relay/verifier"
)

// VerifierConfig tunes role verifier.
type VerifierConfig struct {
	Queue        int  `mapstructure:"queue" doc:"Tickets waiting for re-execution at most (0: 64); more are refused."`
	PerCircuit   int  `mapstructure:"per_circuit" doc:"Tickets one circuit may submit (0: 64)."`
	MaxTicketMiB int  `mapstructure:"max_ticket_mib" doc:"Largest ticket accepted, MiB (0: 16; at most 64)."`
	Portable     bool `mapstructure:"portable" doc:"Re-execute every ticket on the portable Go kernels only (slower; the verdict never uses the assembly kernels)."`
}

// consensusFunc returns the relay's current consensus (its directory
// cache's), or an error before it has one.
type consensusFunc func() (*directory.Consensus, error)

// newVerifier builds the verifier of modelID from the model file; cons
// gives the consensus to check signers against.
func newVerifier(cfg *Config, modelID string, cons *consensusFunc, log *slog.Logger) (*verifier.Verifier, *shardCache, error) {
	var addrs []string
	for _, a := range cfg.Authorities {
		addrs = append(addrs, a.Address)
	}
	file := cfg.Compute.Model
	sc := &shardCache{file: file}
	ends, err := model.LoadEnds(file)
	if err != nil {
		return nil, nil, fmt.Errorf("relay: verifier: %w", err)
	}
	layers := ends.Config().NLayers
	ends.Close()
	relay := func(id [32]byte) *directory.RouterStatus {
		if *cons == nil {
			return nil
		}
		c, err := (*cons)()
		if err != nil {
			return nil
		}
		r := c.Relay(keys.FingerprintOf(id[:]))
		if r == nil || r.HasFlag(directory.FlagBadCompute) {
			return nil
		}
		return r
	}
	v, err := verifier.New(verifier.Config{
		ModelID: modelID,
		Load:    sc.load,
		Signer: func(id [32]byte, m string, first, last int) bool {
			r := relay(id)
			return r != nil && r.Compute != nil && r.HasRole(directory.RoleCompute) && r.Compute.Model == m &&
				r.Compute.Layers == (directory.LayerRange{First: first, Last: last})
		},
		PartySigner: func(id [32]byte, m string, first, last int) bool {
			r := relay(id)
			return r != nil && r.MPC != nil && r.HasRole(directory.RoleMPC) && r.MPC.Model == m &&
				r.MPC.Layers == (directory.LayerRange{First: first, Last: last})
		},
		LoadStage:  sc.loadStage,
		Layers:     layers,
		Prove:      verifier.PostProof(addrs, directory.PathProof, &http.Client{Timeout: 5 * time.Minute}, 30),
		MaxTicket:  cfg.Verifier.MaxTicketMiB << 20,
		Queue:      cfg.Verifier.Queue,
		PerCircuit: cfg.Verifier.PerCircuit,
		Portable:   cfg.Verifier.Portable,
		Logger:     log,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("relay: %w", err)
	}
	return v, sc, nil
}

// shardCache keeps the last shard and the last confidential stage loaded
// (the verifier's single worker re-executes one ticket at a time, mostly of
// the same few ranges).
type shardCache struct {
	file string
	mu   sync.Mutex
	sh   *model.Shard
	ps   *mpc.PreparedStage
}

// loadStage returns the prepared weights of the stage [first, last), at
// the parameters every party uses (mpc.Params{}, as relay/compute.go).
func (s *shardCache) loadStage(first, last int) (*mpc.PreparedStage, func(), error) {
	s.mu.Lock()
	if s.ps != nil {
		if f, l := s.ps.Range(); f != first || l != last {
			s.ps = nil
		}
	}
	if s.ps == nil {
		if first < 0 || first >= last || last-first > mpc.MaxStageLayers {
			s.mu.Unlock()
			return nil, nil, fmt.Errorf("stage [%d,%d)", first, last)
		}
		w, err := mpc.LoadStageWeights(s.file, first, last)
		if err == nil {
			s.ps, err = mpc.PrepareStage(w, mpc.Params{})
		}
		if err != nil {
			s.mu.Unlock()
			return nil, nil, fmt.Errorf("stage [%d,%d): %w", first, last, err)
		}
	}
	return s.ps, s.mu.Unlock, nil
}

func (s *shardCache) load(first, last int) (*model.Shard, func(), error) {
	s.mu.Lock()
	if s.sh != nil && (s.sh.First() != first || s.sh.Last() != last) {
		s.sh.Close()
		s.sh = nil
	}
	if s.sh == nil {
		sh, err := model.Load(s.file, model.ShardOptions{First: first, Last: last})
		if err != nil {
			s.mu.Unlock()
			return nil, nil, fmt.Errorf("load [%d,%d): %w", first, last, err)
		}
		s.sh = sh
	}
	return s.sh, s.mu.Unlock, nil
}

func (s *shardCache) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sh != nil {
		s.sh.Close()
		s.sh = nil
	}
}
