// Package client is the UNFED client: the local inference proxy a person
// runs. It owns directory bootstrap and verification on the client side,
// guard state, path selection, circuit building and the per-token loop, and
// it serves the OpenAI-compatible API (client/openai) and the SOCKS5 front
// (client/socks). cmd/unfed-client calls Run.
package client

import (
	"context"
	"fmt"
	"os"

	"github.com/unfed/unfed/relay/daemon"
	"github.com/unfed/unfed/relay/obs"
)

// Config is the client's configuration.
type Config struct {
	DataDir string        `mapstructure:"data_dir" doc:"Directory for the cached consensus and guard state (created mode 0700)."`
	Log     obs.LogConfig `mapstructure:"log"`
	Metrics struct {
		Listen string `mapstructure:"listen" doc:"Address for /metrics and /healthz (host:port, :0 picks a port; empty disables)."`
	} `mapstructure:"metrics"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	c := Config{DataDir: "unfed-client-data", Log: obs.DefaultLogConfig()}
	c.Metrics.Listen = "127.0.0.1:0"
	return c
}

// Run runs the client until ctx is canceled.
func Run(ctx context.Context, cfg Config, env daemon.Env) error {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	reg := obs.NewRegistry()
	if cfg.Metrics.Listen != "" {
		ms, err := obs.ListenMetrics(cfg.Metrics.Listen, reg, nil, env.Log)
		if err != nil {
			return fmt.Errorf("client: %w", err)
		}
		defer ms.Close()
		env.Announce("metrics", ms.Addr())
	}
	<-ctx.Done()
	return nil
}
