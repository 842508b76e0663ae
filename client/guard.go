package client

// Guards, in the spirit of Tor's guard-spec: the client keeps a small
// persistent sample of guards, uses the first few listed ones (the primary
// guards) in a fixed order, and moves to the next only when one fails,
// retrying failed ones after a back-off. Keeping the same guard for months is
// what stops an adversary who runs some guards from eventually being chosen
// by every client. State lives in <data-dir>/guards.json.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/relay/keys"
)

// GuardConfig tunes guard selection.
type GuardConfig struct {
	SampleSize int           `mapstructure:"sample_size" doc:"How many guards to keep in the persistent sample."`
	Primary    int           `mapstructure:"primary" doc:"How many of the sampled guards are primary (tried first, in order)."`
	Lifetime   time.Duration `mapstructure:"lifetime" doc:"How long a sampled guard is kept before it is replaced."`
	RetryAfter time.Duration `mapstructure:"retry_after" doc:"How long a guard that failed is passed over before it is tried again."`
}

// DefaultGuardConfig follows guard-spec's orders of magnitude.
func DefaultGuardConfig() GuardConfig {
	return GuardConfig{SampleSize: 20, Primary: 3, Lifetime: 120 * 24 * time.Hour, RetryAfter: 10 * time.Minute}
}

const guardFile = "guards.json"

// maxGuardFile bounds what we read back from disk.
const maxGuardFile = 1 << 20

type sampledGuard struct {
	Fingerprint string    `json:"fingerprint"`
	AddedAt     time.Time `json:"added_at"`
	FailedAt    time.Time `json:"failed_at,omitzero"`
	// Path bias counts (pathbias.go): circuits through this guard whose
	// outcome counted, and how many of them succeeded.
	Circuits  float64 `json:"circuits,omitzero"`
	Succeeded float64 `json:"succeeded,omitzero"`
	// Disabled is set when the guard's success rate was abnormally low: it
	// is never used again.
	Disabled bool `json:"path_bias_disabled,omitzero"`
}

type guardState struct {
	Version int            `json:"version"`
	Sampled []sampledGuard `json:"sampled"`
}

// Guards is the client's guard set.
type Guards struct {
	path string
	cfg  GuardConfig
	now  func() time.Time
	rng  *rand.Rand

	mu    sync.Mutex // guards state
	state guardState
}

// LoadGuards reads the guard state from dataDir, or starts an empty one.
// A corrupt state file is an error, not silently replaced: it says which
// guards the client trusted.
func LoadGuards(dataDir string, cfg GuardConfig, now func() time.Time) (*Guards, error) {
	if now == nil {
		now = time.Now
	}
	def := DefaultGuardConfig()
	if cfg.SampleSize <= 0 {
		cfg.SampleSize = def.SampleSize
	}
	if cfg.Primary <= 0 {
		cfg.Primary = def.Primary
	}
	if cfg.Lifetime <= 0 {
		cfg.Lifetime = def.Lifetime
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = def.RetryAfter
	}
	g := &Guards{path: filepath.Join(dataDir, guardFile), cfg: cfg, now: now, rng: newSamplingRand(), state: guardState{Version: 1}}
	b, err := os.ReadFile(g.path)
	if errors.Is(err, fs.ErrNotExist) {
		return g, nil
	}
	if err != nil {
		return nil, fmt.Errorf("client: guard state: %w", err)
	}
	if len(b) > maxGuardFile {
		return nil, fmt.Errorf("client: guard state %s is larger than %d bytes", g.path, maxGuardFile)
	}
	if err := json.Unmarshal(b, &g.state); err != nil {
		return nil, fmt.Errorf("client: guard state %s is corrupt: %w (move it away to start a new guard sample)", g.path, err)
	}
	if g.state.Version != 1 {
		return nil, fmt.Errorf("client: guard state %s has version %d, want 1", g.path, g.state.Version)
	}
	for _, s := range g.state.Sampled {
		if _, err := keys.ParseFingerprint(s.Fingerprint); err != nil {
			return nil, fmt.Errorf("client: guard state %s is corrupt: %w", g.path, err)
		}
	}
	return g, nil
}

// Sampled returns the fingerprints in the sample, in order.
func (g *Guards) Sampled() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	for _, s := range g.state.Sampled {
		out = append(out, s.Fingerprint)
	}
	return out
}

// Choose returns the guard to use now: the first primary guard that is
// listed as a usable guard in relays and not in its retry back-off. It tops
// the sample up from relays first and saves the state when it changed.
func (g *Guards) Choose(relays []directory.RouterStatus) (*directory.RouterStatus, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	listed := map[string]*directory.RouterStatus{}
	for i := range relays {
		r := &relays[i]
		if usable(r, directory.FlagGuard) {
			listed[r.Fingerprint.String()] = r
		}
	}
	changed := false
	// Drop expired guards.
	kept := g.state.Sampled[:0]
	for _, s := range g.state.Sampled {
		if now.Sub(s.AddedAt) < g.cfg.Lifetime {
			kept = append(kept, s)
		} else {
			changed = true
		}
	}
	g.state.Sampled = kept
	// Top up with listed guards not yet sampled, drawn by consensus weight.
	var fresh []string
	for fp := range listed {
		if !slices.ContainsFunc(g.state.Sampled, func(s sampledGuard) bool { return s.Fingerprint == fp }) {
			fresh = append(fresh, fp)
		}
	}
	slices.Sort(fresh) // map order is random; make the weighted draw below the only randomness
	fresh = weightedOrder(fresh, listed, g.rng)
	// A guard disabled for path bias stays in the sample (so it is never
	// drawn again) but does not take a place in it.
	inUse := 0
	for _, s := range g.state.Sampled {
		if !s.Disabled {
			inUse++
		}
	}
	for _, fp := range fresh {
		if inUse >= g.cfg.SampleSize {
			break
		}
		inUse++
		g.state.Sampled = append(g.state.Sampled, sampledGuard{Fingerprint: fp, AddedAt: now.UTC().Truncate(time.Second)})
		changed = true
	}
	if changed {
		if err := g.saveLocked(); err != nil {
			return nil, err
		}
	}
	primaries := 0
	var fallback *directory.RouterStatus
	for _, s := range g.state.Sampled {
		r := listed[s.Fingerprint]
		if r == nil || s.Disabled {
			continue
		}
		if primaries++; primaries > g.cfg.Primary {
			break
		}
		if s.FailedAt.IsZero() || now.Sub(s.FailedAt) >= g.cfg.RetryAfter {
			return r, nil
		}
		if fallback == nil {
			fallback = r
		}
	}
	// Every primary guard failed recently: try beyond the primaries.
	for _, s := range g.state.Sampled {
		if r := listed[s.Fingerprint]; r != nil && !s.Disabled && (s.FailedAt.IsZero() || now.Sub(s.FailedAt) >= g.cfg.RetryAfter) {
			return r, nil
		}
	}
	if fallback != nil {
		return fallback, nil
	}
	return nil, fmt.Errorf("%w: no listed guard (the consensus has %d usable guards)", ErrNoPath, len(listed))
}

// MarkFailed records that a guard could not be used.
func (g *Guards) MarkFailed(fp keys.Fingerprint) error { return g.mark(fp, g.now()) }

// MarkSucceeded clears a guard's failure.
func (g *Guards) MarkSucceeded(fp keys.Fingerprint) error { return g.mark(fp, time.Time{}) }

func (g *Guards) mark(fp keys.Fingerprint, at time.Time) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i := range g.state.Sampled {
		if g.state.Sampled[i].Fingerprint == fp.String() {
			if g.state.Sampled[i].FailedAt.Equal(at) {
				return nil
			}
			g.state.Sampled[i].FailedAt = at
			return g.saveLocked()
		}
	}
	return nil
}

func (g *Guards) saveLocked() error {
	b, err := json.MarshalIndent(g.state, "", "  ")
	if err != nil {
		return fmt.Errorf("client: guard state: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(g.path), 0o700); err != nil {
		return fmt.Errorf("client: guard state: %w", err)
	}
	if err := keys.WriteFileAtomic(g.path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("client: guard state: %w", err)
	}
	return nil
}
