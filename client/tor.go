package client

// Reaching the network over Tor (tor.enabled, spec/08-client-api.md §11):
// bine starts the system's tor, the client waits for it to bootstrap
// (logging each phase), then dials its guard or bridge and fetches the
// consensus through Tor's SOCKS port, so neither the guard nor the
// directory sees the client's address. Relays that listen only as onion
// services are reachable as guards too.

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"time"

	"github.com/unfed/unfed/transports/onion"
)

// startTor starts tor when cfg enables it; nil, nil otherwise.
func startTor(ctx context.Context, cfg onion.Config, dataDir string, log *slog.Logger) (*onion.Tor, error) {
	if !cfg.Enabled {
		return nil, nil
	}
	log.Info("tor.enabled: the guard and the directory will see a Tor exit's address, not ours")
	t, err := onion.Start(ctx, cfg, filepath.Join(dataDir, "tor"), log)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	return t, nil
}

// torHTTPClient fetches through Tor; a fetch may take a circuit's build
// time longer than a direct one.
func torHTTPClient(t *onion.Tor) *http.Client {
	return &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		DialContext:     t.DialContext,
		IdleConnTimeout: 30 * time.Second,
	}}
}
