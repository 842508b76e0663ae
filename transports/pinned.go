//go:build pinned

package transports

// Tor integration (a client reaching its guard over Tor, a relay as an onion
// service) is a later wave and will use bine's Tor control client. This
// file, compiled only with the never-set build tag "pinned", keeps bine
// pinned in go.mod at the chosen version so `go mod tidy` does not drop it.
import _ "github.com/cretz/bine/tor"
