// Package transports is the registry of UNFED's transports (spec/01-link.md
// §2): "tcp", "quic", "obfs4" (in process) and "managed" (an external
// pluggable-transport binary). Relays listen on any set of them at once;
// clients reach a guard or bridge with any of them. All yield standard
// net.Conn and net.Listener values, over which relay/link runs Noise.
//
//	t, _ := transports.Get("obfs4")
//	sf, _ := t.ServerFactory(transports.Config{Options: transports.Args{"iat-mode": {"0"}}})
//	ln, _ := sf.Listen(ctx, ":0", stateDir)       // ln.Addr(), ln.Args()
//	cf, _ := t.ClientFactory(ctx, transports.Config{})
//	d, _ := cf.ParseArgs(bridge.Args)             // before the network is touched
//	conn, _ := d.DialContext(ctx, bridge.Addr)
package transports

import (
	"fmt"
	"sort"
	"sync"

	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/transports/base"
	"github.com/unfed/unfed/transports/managed"
	"github.com/unfed/unfed/transports/obfs4"
	"github.com/unfed/unfed/transports/quic"
	"github.com/unfed/unfed/transports/tcp"
)

// The transport interfaces and their configuration, from package base.
type (
	Transport     = base.Transport
	ClientFactory = base.ClientFactory
	ServerFactory = base.ServerFactory
	Dialer        = base.Dialer
	Listener      = base.Listener
	Config        = base.Config
	PTConfig      = base.PTConfig
	Args          = base.Args
	// Bridge is a parsed bridge line in Tor's format.
	Bridge = obfs4.Bridge
)

var (
	mu       sync.RWMutex
	registry = map[string]Transport{
		tcp.Name:     tcp.Transport{},
		quic.Name:    quic.Transport{},
		obfs4.Name:   obfs4.Transport{},
		managed.Name: managed.Transport{},
	}
)

// Register adds t under t.Name(). A name may be registered once.
func Register(t Transport) error {
	mu.Lock()
	defer mu.Unlock()
	if _, ok := registry[t.Name()]; ok {
		return fmt.Errorf("transports: %q already registered", t.Name())
	}
	registry[t.Name()] = t
	return nil
}

// Get returns the transport registered as name.
func Get(name string) (Transport, bool) {
	mu.RLock()
	defer mu.RUnlock()
	t, ok := registry[name]
	return t, ok
}

// Names returns the registered names, sorted.
func Names() []string {
	mu.RLock()
	defer mu.RUnlock()
	out := make([]string, 0, len(registry))
	for n := range registry {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// BridgeLine formats "obfs4 ADDR FINGERPRINT cert=… iat-mode=N" for an obfs4
// listener's address and published args.
func BridgeLine(addr string, fp keys.Fingerprint, args Args) string {
	return obfs4.BridgeLine(addr, fp, args)
}

// ParseBridgeLine parses a bridge line ("[Bridge] TRANSPORT ADDR FINGERPRINT
// [K=V ...]"); obfs4 lines must carry cert and iat-mode.
func ParseBridgeLine(s string) (Bridge, error) { return obfs4.ParseBridgeLine(s) }
