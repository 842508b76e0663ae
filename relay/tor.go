package relay

// Tor (spec/09-relay-operation.md §12): with tor.enabled a relay dials the
// onion addresses of other relays through Tor (its own tor started by bine,
// or the SOCKS port of one given as tor.socks), and with or.onion it also
// listens as a v3 onion service, the address its descriptor publishes under
// the transport "onion". Relays reach every other address directly.

import (
	"context"
	"log/slog"
	"path/filepath"

	"github.com/unfed/unfed/transports/onion"
)

// StartTor starts what cfg asks for under the program's data directory
// (tor/ when cfg.DataDir is empty); nil, nil when Tor is not enabled. The
// tor process lives until ctx is done or the Tor is closed. Authorities
// use it too, for the prober (LinkProber.Tor).
func StartTor(ctx context.Context, cfg onion.Config, dataDir string, log *slog.Logger) (*onion.Tor, error) {
	if !cfg.Enabled {
		return nil, nil
	}
	return onion.Start(ctx, cfg, filepath.Join(dataDir, "tor"), log)
}
