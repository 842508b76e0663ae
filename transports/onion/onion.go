package onion

// The transport "onion" (spec/01-link.md §2.7): a relay listens as a v3
// onion service and publishes "<56 base32>.onion:PORT"; peers reach it
// through Tor. The service's Ed25519 key lives in <stateDir>/onion_v3.key
// (a PEM block holding the 32-byte seed, mode 0600), created on first use
// and afterwards only read, so the address survives restarts.

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/cretz/bine/tor"

	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/transports/base"
	"github.com/unfed/unfed/transports/onionaddr"
)

// Name is the transport's name.
const Name = "onion"

// KeyFile is the onion-service key inside the state directory.
const KeyFile = "onion_v3.key"

const keyPEMType = "UNFED ONION SERVICE ED25519 SEED"

// maxKeyFile bounds what is read of a key file.
const maxKeyFile = 4096

// Transport is the onion transport over a running Tor. It is not in the
// transports registry, which holds transports needing no process: whoever
// starts the Tor constructs it.
type Transport struct {
	Tor *Tor
	// PublishTimeout bounds waiting for the service descriptor's first
	// upload to an HSDir (0 means 3 minutes).
	PublishTimeout time.Duration
}

// Name returns "onion".
func (Transport) Name() string { return Name }

// ClientFactory returns the client side: it dials onion addresses through
// the Tor.
func (t Transport) ClientFactory(context.Context, base.Config) (base.ClientFactory, error) {
	if t.Tor == nil {
		return nil, errors.New("onion: no Tor configured (tor.enabled)")
	}
	return clientFactory{t.Tor}, nil
}

// ServerFactory returns the server side; onion takes no options.
func (t Transport) ServerFactory(cfg base.Config) (base.ServerFactory, error) {
	if len(cfg.Options) != 0 {
		return nil, fmt.Errorf("onion: unexpected options %v", cfg.Options.Keys())
	}
	if t.Tor == nil || t.Tor.tor == nil {
		return nil, errors.New("onion: an onion listener needs a tor started by this process (tor.enabled, without tor.socks)")
	}
	return serverFactory(t), nil
}

type clientFactory struct{ tor *Tor }

func (clientFactory) Close() error { return nil }

func (f clientFactory) ParseArgs(args base.Args) (base.Dialer, error) {
	if len(args) != 0 {
		return nil, fmt.Errorf("onion: unexpected arguments %v", args.Keys())
	}
	return Dialer(f), nil
}

// Dialer dials onion addresses through Tor.
type Dialer struct{ tor *Tor }

// DialContext connects to addr, which must be "<v3 onion host>:PORT".
func (d Dialer) DialContext(ctx context.Context, addr string) (net.Conn, error) {
	if err := CheckAddr(addr); err != nil {
		return nil, err
	}
	return d.tor.DialContext(ctx, "tcp", addr)
}

// CheckAddr checks "<v3 onion host>:PORT", PORT 1..65535 without leading
// zeros.
func CheckAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("onion: address %q: %w", addr, err)
	}
	if _, err := onionaddr.Parse(host); err != nil {
		return fmt.Errorf("onion: address %q: %w", addr, err)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 || strconv.FormatUint(p, 10) != port {
		return fmt.Errorf("onion: address %q: bad port", addr)
	}
	return nil
}

type serverFactory Transport

// Listen publishes an onion service whose virtual port is addr's port
// (":9001"; port 0 is refused: the published port must be chosen) and
// returns once tor has uploaded its descriptor to an HSDir. Connections
// reach a local listener on 127.0.0.1 from tor itself, so every peer's
// address is 127.0.0.1.
func (f serverFactory) Listen(ctx context.Context, addr, stateDir string) (base.Listener, error) {
	_, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("onion: listen %q: want :PORT", addr)
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port <= 0 || port > 65535 {
		return nil, fmt.Errorf("onion: listen %q: the virtual port must be 1..65535", addr)
	}
	if stateDir == "" {
		return nil, errors.New("onion: a state directory is required for the service key")
	}
	key, err := LoadOrCreateKey(filepath.Join(stateDir, KeyFile))
	if err != nil {
		return nil, err
	}
	timeout := f.PublishTimeout
	if timeout <= 0 {
		timeout = DefaultBootstrapTimeout
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	f.Tor.log.Info("onion: publishing onion service", "addr", onionaddr.FromPublicKey(key.Public().(ed25519.PublicKey))+":"+ps)
	svc, err := f.Tor.tor.Listen(pctx, &tor.ListenConf{Key: key, Version3: true, RemotePorts: []int{port}})
	if err != nil {
		return nil, fmt.Errorf("onion: publishing the onion service: %w", err)
	}
	l := &listener{svc: svc, addr: onionAddr(svc.String())}
	l.stop = context.AfterFunc(ctx, func() { l.Close() })
	return l, nil
}

type onionAddr string

func (onionAddr) Network() string  { return "tcp" }
func (a onionAddr) String() string { return string(a) }

type listener struct {
	svc  *tor.OnionService
	addr onionAddr
	stop func() bool

	once sync.Once
	err  error
}

func (l *listener) Accept() (net.Conn, error) { return l.svc.Accept() }
func (l *listener) Addr() net.Addr            { return l.addr }
func (l *listener) Args() base.Args           { return base.Args{} }

func (l *listener) Close() error {
	l.once.Do(func() {
		l.stop()
		l.err = l.svc.Close()
	})
	return l.err
}

// LoadOrCreateKey reads the onion-service key at path, or creates it (mode
// 0600, atomically) when the file does not exist. A file with group or
// other permissions, over 4096 bytes, or not holding one 32-byte seed is
// refused.
func LoadOrCreateKey(path string) (ed25519.PrivateKey, error) {
	data, err := readKey(path)
	if errors.Is(err, fs.ErrNotExist) {
		seed := make([]byte, ed25519.SeedSize)
		if _, err := rand.Read(seed); err != nil {
			return nil, fmt.Errorf("onion: %w", err)
		}
		block := pem.EncodeToMemory(&pem.Block{Type: keyPEMType, Bytes: seed})
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("onion: %w", err)
		}
		if err := keys.WriteFileAtomic(path, block, 0o600); err != nil {
			return nil, fmt.Errorf("onion: writing %s: %w", path, err)
		}
		return ed25519.NewKeyFromSeed(seed), nil
	}
	if err != nil {
		return nil, err
	}
	seed, err := ParseKey(data)
	if err != nil {
		return nil, fmt.Errorf("onion: %s: %w", path, err)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

func readKey(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("onion: %s has mode %v; want 0600", path, st.Mode().Perm())
	}
	if st.Size() > maxKeyFile {
		return nil, fmt.Errorf("onion: %s is over %d bytes", path, maxKeyFile)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("onion: %w", err)
	}
	return data, nil
}

// ParseKey parses a key file: one PEM block of type
// "UNFED ONION SERVICE ED25519 SEED" holding 32 bytes, nothing else.
func ParseKey(data []byte) ([]byte, error) {
	if len(data) > maxKeyFile {
		return nil, errors.New("key file too large")
	}
	block, rest := pem.Decode(data)
	if block == nil || block.Type != keyPEMType {
		return nil, fmt.Errorf("not a %q PEM block", keyPEMType)
	}
	if len(block.Headers) != 0 || len(trimSpace(rest)) != 0 {
		return nil, errors.New("unexpected headers or trailing data")
	}
	if len(block.Bytes) != ed25519.SeedSize {
		return nil, fmt.Errorf("seed of %d bytes, want %d", len(block.Bytes), ed25519.SeedSize)
	}
	return block.Bytes, nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\n' || b[0] == '\r' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}
