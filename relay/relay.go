// Package relay is the UNFED relay node: it owns the process-level wiring of
// a relay (keys, listeners, links, circuits, the compute and MPC roles,
// descriptor publication) and the shared building blocks under it
// (relay/keys, relay/config, relay/obs, relay/link, relay/cell, ...).
// cmd/unfed-relay calls Run; nothing else should.
package relay

import (
	"context"
	"fmt"

	"github.com/unfed/unfed/relay/daemon"
	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/relay/obs"
)

// Config is the relay's configuration. Every field has a one-sentence doc;
// the zero value of a field means its default.
type Config struct {
	DataDir  string        `mapstructure:"data_dir" doc:"Directory for keys and state (created mode 0700)."`
	Nickname string        `mapstructure:"nickname" doc:"Operator-chosen relay name shown in the consensus."`
	Log      obs.LogConfig `mapstructure:"log"`
	Metrics  MetricsConfig `mapstructure:"metrics"`
}

// MetricsConfig is the /metrics and /healthz listener.
type MetricsConfig struct {
	Listen string `mapstructure:"listen" doc:"Address for /metrics and /healthz (host:port, :0 picks a port; empty disables)."`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		DataDir:  "unfed-relay-data",
		Nickname: "unnamed",
		Log:      obs.DefaultLogConfig(),
		Metrics:  MetricsConfig{Listen: "127.0.0.1:0"},
	}
}

// Run runs a relay until ctx is canceled.
func Run(ctx context.Context, cfg Config, env daemon.Env) error {
	store, err := keys.Open(cfg.DataDir, keys.Options{})
	if err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	env.Log.Info("relay identity", "fingerprint", store.Identity().Fingerprint().String(), "nickname", cfg.Nickname)
	reg := obs.NewRegistry()
	if cfg.Metrics.Listen != "" {
		ms, err := obs.ListenMetrics(cfg.Metrics.Listen, reg, nil, env.Log)
		if err != nil {
			return fmt.Errorf("relay: %w", err)
		}
		defer ms.Close()
		env.Announce("metrics", ms.Addr())
	}
	<-ctx.Done()
	return nil
}
