// Package onion is UNFED's Tor integration (spec/01-link.md §2.7), built on
// github.com/cretz/bine: Start runs the system's tor (a control port with
// cookie authentication, a SOCKS port chosen by tor) and waits for it to
// bootstrap, logging its progress; a Tor's DialContext reaches any address
// through Tor's SOCKS port (bine's Dialer), so the peer sees a Tor relay's
// address instead of ours; and the transport "onion" (onion.go) listens as
// a v3 onion service whose Ed25519 key is kept, mode 0600, in the state
// directory, so the address is the same on every start.
//
//	tr, err := onion.Start(ctx, onion.Config{Enabled: true, DataDir: dir}, log)
//	defer tr.Close()
//	conn, err := tr.DialContext(ctx, "tcp", "192.0.2.1:9001")  // via Tor
//	ln, err := onion.Transport{Tor: tr}.ServerFactory(...)      // an onion service
//
// Only relay, client and directory-authority wiring import this package.
package onion

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cretz/bine/control"
	"github.com/cretz/bine/tor"
	"golang.org/x/net/proxy"

	"github.com/unfed/unfed/transports/base"
)

// Config is the `tor:` section of a client's, relay's or authority's
// configuration. The zero value is "do not use Tor".
type Config struct {
	Enabled          bool          `mapstructure:"enabled" doc:"Reach peers through Tor, starting the system's tor (unless tor.socks names a running one); a relay with or.onion also listens as an onion service."`
	TorPath          string        `mapstructure:"tor_path" doc:"The tor executable (empty: tor on PATH, e.g. Debian's /usr/sbin/tor)."`
	DataDir          string        `mapstructure:"data_dir" doc:"Tor's data directory (created 0700; empty: tor/ inside this program's data_dir)."`
	Torrc            string        `mapstructure:"torrc" doc:"Extra torrc file for tor, e.g. a private Tor network's DirAuthority and TestingTorNetwork lines (empty: none, the public Tor network)."`
	BootstrapTimeout time.Duration `mapstructure:"bootstrap_timeout" doc:"Longest wait for tor to bootstrap (0 means 3m)."`
	SOCKS            string        `mapstructure:"socks" doc:"host:port of an already-running Tor's SOCKS5 port to dial through instead of starting tor (dialing only: an onion listener needs a tor of its own)."`
}

// DefaultBootstrapTimeout is Config.BootstrapTimeout's default.
const DefaultBootstrapTimeout = 3 * time.Minute

// ErrNoTor is wrapped when the tor executable cannot be found or run.
var ErrNoTor = errors.New("onion: tor is not installed")

// ErrBootstrap is wrapped when tor does not bootstrap within its deadline.
var ErrBootstrap = errors.New("onion: tor did not bootstrap")

// Tor is a running tor (or a SOCKS port of one that runs elsewhere).
type Tor struct {
	log   *slog.Logger
	tor   *tor.Tor // nil when only dialing through Config.SOCKS
	socks string   // the SOCKS5 address dials go through
	dial  proxy.ContextDialer

	mu     sync.Mutex // guards closed
	closed bool
}

// Start starts tor as cfg says and waits, at most cfg.BootstrapTimeout,
// until it has bootstrapped, logging each new bootstrap phase. defaultDir
// is used when cfg.DataDir is empty. The tor process lives until life is
// done or Close is called; it also exits if this process dies
// (__OwningControllerProcess).
func Start(life context.Context, cfg Config, defaultDir string, log *slog.Logger) (*Tor, error) {
	log = base.DiscardLogger(log)
	if cfg.SOCKS != "" {
		if _, _, err := net.SplitHostPort(cfg.SOCKS); err != nil {
			return nil, fmt.Errorf("onion: tor.socks %q: %w", cfg.SOCKS, err)
		}
		return newSOCKS(cfg.SOCKS, log, nil)
	}
	path, err := FindTor(cfg.TorPath)
	if err != nil {
		return nil, err
	}
	dir := cfg.DataDir
	if dir == "" {
		dir = defaultDir
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, fmt.Errorf("onion: tor.data_dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("onion: tor.data_dir: %w", err)
	}
	timeout := cfg.BootstrapTimeout
	if timeout <= 0 {
		timeout = DefaultBootstrapTimeout
	}
	conf := &tor.StartConf{
		ExePath: path,
		DataDir: dir,
		// Tor's notices go to a file next to its state for the operator;
		// this process logs the bootstrap phases itself.
		ExtraArgs: []string{"__OwningControllerProcess", strconv.Itoa(os.Getpid()),
			"Log", "notice file " + filepath.Join(dir, "notice.log"),
			// Tor's extended SOCKS replies say why an onion dial failed
			// (descriptor, introduction, rendezvous: socksMeaning).
			"SocksPort", "auto ExtendedErrors"},
		NoAutoSocksPort: true,
	}
	if cfg.Torrc != "" {
		if _, err := os.Stat(cfg.Torrc); err != nil {
			return nil, fmt.Errorf("onion: tor.torrc: %w", err)
		}
		conf.TorrcFile = cfg.Torrc
	}
	log.Info("onion: starting tor", "path", path, "data_dir", dir)
	t, err := tor.Start(life, conf)
	if err != nil {
		return nil, fmt.Errorf("%w: %s did not start: %v (see %s)", ErrNoTor, path, err, filepath.Join(dir, "notice.log"))
	}
	ctx, cancel := context.WithTimeout(life, timeout)
	defer cancel()
	if err := bootstrap(ctx, t, log); err != nil {
		t.Close()
		return nil, fmt.Errorf("%w (see %s)", err, filepath.Join(dir, "notice.log"))
	}
	socks, err := socksAddr(t)
	if err != nil {
		t.Close()
		return nil, err
	}
	tr, err := newSOCKS(socks, log, t)
	if err != nil {
		t.Close()
		return nil, err
	}
	log.Info("onion: tor bootstrapped", "socks", socks)
	return tr, nil
}

// FindTor returns the tor executable: exe (a path or a name on PATH), or
// by default "tor" on PATH or Debian's /usr/sbin/tor, which is not on a
// normal user's PATH.
func FindTor(exe string) (string, error) {
	if exe != "" {
		path, err := exec.LookPath(exe)
		if err != nil {
			return "", fmt.Errorf("%w: %q not found (%v); install Debian's tor package (apt-get install tor) or fix tor.tor_path", ErrNoTor, exe, err)
		}
		return path, nil
	}
	if path, err := exec.LookPath("tor"); err == nil {
		return path, nil
	}
	if path, err := exec.LookPath("/usr/sbin/tor"); err == nil {
		return path, nil
	}
	return "", fmt.Errorf("%w: no tor on PATH nor /usr/sbin/tor; install Debian's tor package (apt-get install tor) or set tor.tor_path", ErrNoTor)
}

func newSOCKS(addr string, log *slog.Logger, t *tor.Tor) (*Tor, error) {
	tr := &Tor{log: log, tor: t, socks: addr}
	if t != nil {
		// bine's Dialer: tor's SOCKS port, found over the control port.
		d, err := t.Dialer(context.Background(), &tor.DialConf{ProxyAddress: addr, SkipEnableNetwork: true})
		if err != nil {
			return nil, fmt.Errorf("onion: tor dialer: %w", err)
		}
		tr.dial = d
		return tr, nil
	}
	d, err := proxy.SOCKS5("tcp", addr, nil, proxy.Direct)
	if err != nil {
		return nil, fmt.Errorf("onion: socks %s: %w", addr, err)
	}
	cd, ok := d.(proxy.ContextDialer)
	if !ok {
		return nil, errors.New("onion: socks dialer without DialContext")
	}
	tr.dial = cd
	return tr, nil
}

// bootstrap enables the network and polls tor's bootstrap phase until it
// reaches 100, logging every change, or ctx ends. A deadline error names
// the last phase tor reported, which says where it stuck.
func bootstrap(ctx context.Context, t *tor.Tor, log *slog.Logger) error {
	if err := t.Control.SetConf(control.KeyVals("DisableNetwork", "0")...); err != nil {
		return fmt.Errorf("onion: enabling tor's network: %w", err)
	}
	last := ""
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		phase, err := bootstrapPhase(t)
		if err != nil {
			return fmt.Errorf("onion: tor control port: %w", err)
		}
		if phase.line != last {
			last = phase.line
			log.Info("onion: tor bootstrap", "progress", phase.progress, "tag", phase.tag, "summary", phase.summary)
		}
		if phase.severity == "ERR" {
			return fmt.Errorf("%w: %s", ErrBootstrap, phase.line)
		}
		if phase.progress == 100 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w within its deadline: stuck at %d%% (%s: %s)", ErrBootstrap, phase.progress, phase.tag, phase.summary)
		case <-tick.C:
		}
	}
}

// phase is one `status/bootstrap-phase` answer (control-spec §4.1.10):
// `NOTICE BOOTSTRAP PROGRESS=50 TAG=loading_descriptors SUMMARY="..."`.
type phase struct {
	line, severity, tag, summary string
	progress                     int
}

func bootstrapPhase(t *tor.Tor) (phase, error) {
	vals, err := t.Control.GetInfo("status/bootstrap-phase")
	if err != nil {
		return phase{}, err
	}
	if len(vals) != 1 {
		return phase{}, errors.New("no status/bootstrap-phase")
	}
	return parsePhase(vals[0].Val), nil
}

// parsePhase reads a bootstrap-phase line; fields it cannot read stay zero.
func parsePhase(line string) phase {
	p := phase{line: line}
	if len(line) > 1024 {
		p.line = line[:1024]
	}
	sev, rest, _ := strings.Cut(p.line, " ")
	p.severity = sev
	_, rest, _ = strings.Cut(rest, " ") // BOOTSTRAP
	for rest != "" {
		var kv string
		if i := strings.IndexByte(rest, '='); i >= 0 && i+1 < len(rest) && rest[i+1] == '"' {
			end := strings.IndexByte(rest[i+2:], '"')
			if end < 0 {
				kv, rest = rest, ""
			} else {
				kv, rest = rest[:i+2+end+1], strings.TrimLeft(rest[i+2+end+1:], " ")
			}
		} else {
			kv, rest, _ = strings.Cut(rest, " ")
		}
		k, v, _ := strings.Cut(kv, "=")
		v = strings.Trim(v, `"`)
		switch k {
		case "PROGRESS":
			if n, err := strconv.Atoi(v); err == nil && n >= 0 && n <= 100 {
				p.progress = n
			}
		case "TAG":
			p.tag = v
		case "SUMMARY":
			p.summary = v
		}
	}
	return p
}

// socksAddr asks tor for its SOCKS listener ("127.0.0.1:PORT", quoted by
// newer tors).
func socksAddr(t *tor.Tor) (string, error) {
	vals, err := t.Control.GetInfo("net/listeners/socks")
	if err != nil {
		return "", fmt.Errorf("onion: tor socks port: %w", err)
	}
	if len(vals) != 1 {
		return "", errors.New("onion: tor has no socks port")
	}
	addr := strings.Trim(strings.Fields(vals[0].Val + " ")[0], `"`)
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return "", fmt.Errorf("onion: tor socks port %q: %w", vals[0].Val, err)
	}
	return addr, nil
}

// SOCKSAddr is the SOCKS5 address dials go through.
func (t *Tor) SOCKSAddr() string { return t.socks }

// DialContext connects to addr (host:port, an IP, a name or an onion host)
// through Tor.
func (t *Tor) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if network != "tcp" {
		return nil, fmt.Errorf("onion: Tor carries only tcp, not %s", network)
	}
	c, err := t.dial.DialContext(ctx, network, addr)
	if err != nil {
		if m := socksMeaning(err); m != "" {
			return nil, fmt.Errorf("onion: via Tor to %s: %s: %w", addr, m, err)
		}
		return nil, fmt.Errorf("onion: via Tor to %s: %w", addr, err)
	}
	return c, nil
}

// torReplies are the SOCKS5 replies a SocksPort with ExtendedErrors gives
// for onion services (tor's socks-extensions.txt), which the SOCKS client
// reports only as "unknown code: N".
var torReplies = map[int]string{
	0xF0: "onion service descriptor not found",
	0xF1: "onion service descriptor invalid",
	0xF2: "onion service introduction failed",
	0xF3: "onion service rendezvous failed",
	0xF4: "onion service client authorization missing",
	0xF5: "onion service client authorization wrong",
	0xF6: "onion address invalid",
	0xF7: "onion service introduction timed out",
}

// socksMeaning returns what Tor meant by the extended reply in err, or "".
func socksMeaning(err error) string {
	const mark = "unknown code: "
	msg := err.Error()
	i := strings.LastIndex(msg, mark)
	if i < 0 {
		return ""
	}
	digits := msg[i+len(mark):]
	if j := strings.IndexFunc(digits, func(r rune) bool { return r < '0' || r > '9' }); j >= 0 {
		digits = digits[:j]
	}
	code, convErr := strconv.Atoi(digits)
	if convErr != nil {
		return ""
	}
	return torReplies[code]
}

// Close stops tor (if this Tor started it).
func (t *Tor) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed || t.tor == nil {
		t.closed = true
		return nil
	}
	t.closed = true
	return t.tor.Close()
}
