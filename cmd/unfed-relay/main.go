// Command unfed-relay runs an UNFED relay. See README.md and `unfed-relay --help`.
package main

import (
	"context"
	"os"

	"github.com/unfed/unfed/relay"
	"github.com/unfed/unfed/relay/daemon"
)

func main() {
	cfg := relay.DefaultConfig()
	os.Exit(daemon.Main("unfed-relay", os.Args[1:], &cfg, &cfg.Log, func(ctx context.Context, env daemon.Env) error {
		return relay.Run(ctx, cfg, env)
	}))
}
