// Command unfed-client runs the UNFED local inference proxy. See README.md and
// `unfed-client --help`.
package main

import (
	"context"
	"os"

	"github.com/unfed/unfed/client"
	"github.com/unfed/unfed/relay/daemon"
)

func main() {
	cfg := client.DefaultConfig()
	os.Exit(daemon.Main("unfed-client", os.Args[1:], &cfg, &cfg.Log, func(ctx context.Context, env daemon.Env) error {
		return client.Run(ctx, cfg, env)
	}))
}
