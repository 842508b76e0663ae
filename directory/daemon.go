package directory

import (
	"context"
	"fmt"
	"time"

	"github.com/unfed/unfed/relay/daemon"
	"github.com/unfed/unfed/relay/obs"
)

// DaemonConfig is the configuration of the dirauth program: the authority's
// own settings plus logging and the metrics listener.
type DaemonConfig struct {
	AuthorityConfig `mapstructure:",squash"`
	Log             obs.LogConfig `mapstructure:"log"`
	Metrics         struct {
		Listen string `mapstructure:"listen" doc:"Address for /metrics and /healthz (host:port, :0 picks a port; empty disables)."`
	} `mapstructure:"metrics"`
}

// DefaultDaemonConfig returns the defaults of the dirauth program.
func DefaultDaemonConfig() DaemonConfig {
	c := DaemonConfig{Log: obs.DefaultLogConfig()}
	c.DataDir = "dirauth-data"
	c.Listen = "127.0.0.1:0"
	c.Interval = time.Hour
	c.Metrics.Listen = "127.0.0.1:0"
	return c
}

// RunDaemon runs an authority as the dirauth program does: metrics and
// /healthz, then the authority until ctx is canceled.
func RunDaemon(ctx context.Context, cfg DaemonConfig, env daemon.Env) error {
	reg := obs.NewRegistry()
	if cfg.Metrics.Listen != "" {
		ms, err := obs.ListenMetrics(cfg.Metrics.Listen, reg, nil, env.Log)
		if err != nil {
			return fmt.Errorf("directory: %w", err)
		}
		defer ms.Close()
		env.Announce("metrics", ms.Addr())
	}
	return RunAuthority(ctx, cfg.AuthorityConfig, env.Log, reg, env.Announce)
}
