// Command dirauth runs an UNFED directory authority. See README.md and
// `dirauth --help`.
package main

import (
	"context"
	"os"

	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/relay"
	"github.com/unfed/unfed/relay/daemon"
	"github.com/unfed/unfed/transports/onion"
)

// config is the authority's configuration and, to probe relays that listen
// only as onion services, a Tor.
type config struct {
	directory.DaemonConfig `mapstructure:",squash"`
	Tor                    onion.Config `mapstructure:"tor"`
	Mint                   mintConfig   `mapstructure:"mint"`
}

func main() {
	cfg := config{DaemonConfig: directory.DefaultDaemonConfig()}
	os.Exit(daemon.Main("dirauth", os.Args[1:], &cfg, &cfg.Log, func(ctx context.Context, env daemon.Env) error {
		// Reachability is tested with a real link handshake (and a SETUP
		// for compute relays), not a bare TCP connect.
		p := relay.NewLinkProber(env.Log)
		// The catalog says which compute ranges end their model, so each
		// probe sends the SETUP the range needs at once.
		layers := map[string]int{}
		for _, m := range cfg.Models {
			layers[m.ID] = m.Layers
		}
		p.Layers = func(model string) (int, bool) { n, ok := layers[model]; return n, ok }
		t, err := relay.StartTor(ctx, cfg.Tor, cfg.DataDir, env.Log)
		if err != nil {
			return err
		}
		if t != nil {
			defer t.Close()
			p.Tor = t
		}
		cfg.Prober = p
		closeMint, err := startMint(cfg.Mint, &cfg.AuthorityConfig, env.Log)
		if err != nil {
			return err
		}
		defer closeMint()
		return directory.RunDaemon(ctx, cfg.DaemonConfig, env)
	}))
}
