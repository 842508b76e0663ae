// Command dirauth runs an UNFED directory authority. See README.md and
// `dirauth --help`.
package main

import (
	"context"
	"os"

	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/relay"
	"github.com/unfed/unfed/relay/daemon"
)

func main() {
	cfg := directory.DefaultDaemonConfig()
	os.Exit(daemon.Main("dirauth", os.Args[1:], &cfg, &cfg.Log, func(ctx context.Context, env daemon.Env) error {
		// Reachability is tested with a real link handshake (and a SETUP
		// for compute relays), not a bare TCP connect.
		cfg.Prober = relay.NewLinkProber(env.Log)
		return directory.RunDaemon(ctx, cfg, env)
	}))
}
