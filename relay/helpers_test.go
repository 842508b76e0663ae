package relay_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/relay"
	"github.com/unfed/unfed/relay/daemon"
	"github.com/unfed/unfed/relay/keys"
)

// syncBuffer is an io.Writer a running relay and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// node is a relay running in process.
type node struct {
	fp     keys.Fingerprint
	stdout *syncBuffer
	cancel context.CancelFunc
	done   chan error
}

// testConfig is a relay configuration with every listener on 127.0.0.1:0.
func testConfig(t testing.TB, nick string, roles ...string) relay.Config {
	cfg := relay.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.Nickname = nick
	cfg.OR.TCP = "127.0.0.1:0"
	cfg.Metrics.Listen = "127.0.0.1:0"
	cfg.Roles = roles
	cfg.PublishInterval = time.Minute
	cfg.ExtendAllowPrivate = true // every test relay is on 127.0.0.1
	return cfg
}

// startRelay runs relay.Run in a goroutine and waits for its listening
// lines. The relay is stopped, and its clean return checked, at cleanup.
func startRelay(t testing.TB, cfg relay.Config) *node {
	t.Helper()
	ks, err := keys.Open(cfg.DataDir, keys.Options{})
	if err != nil {
		t.Fatal(err)
	}
	n := &node{fp: ks.Identity().Fingerprint(), stdout: &syncBuffer{}, done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	env := daemon.Env{Log: slog.New(slog.DiscardHandler), Stdout: n.stdout, Stderr: n.stdout}
	go func() { n.done <- relay.Run(ctx, cfg, env) }()
	t.Cleanup(func() { n.stop(t) })
	deadline := time.Now().Add(30 * time.Second)
	for n.addr("metrics") == "" {
		select {
		case err := <-n.done:
			t.Fatalf("relay %s exited: %v", cfg.Nickname, err)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("relay %s printed no listening lines: %q", cfg.Nickname, n.stdout.String())
		}
	}
	// The OR lines follow the metrics line; wait for Run to have printed
	// them all (it prints them before blocking).
	for _, l := range []string{"or", "or-quic", "or-obfs4"} {
		want := ""
		switch l {
		case "or":
			want = cfg.OR.TCP
		case "or-quic":
			want = cfg.OR.QUIC
		case "or-obfs4":
			want = cfg.OR.Obfs4
		}
		for want != "" && n.addr(l) == "" {
			if time.Now().After(deadline) {
				t.Fatalf("relay %s printed no %s line", cfg.Nickname, l)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return n
}

// stop cancels the relay and checks that Run returns nil promptly.
func (n *node) stop(t testing.TB) {
	if n.cancel == nil {
		return
	}
	n.cancel()
	n.cancel = nil
	select {
	case err := <-n.done:
		if err != nil {
			t.Errorf("relay.Run returned %v after cancel", err)
		}
	case <-time.After(20 * time.Second):
		t.Error("relay.Run did not return after cancel")
	}
}

// addr returns the address of the listening line of kind, or "".
func (n *node) addr(kind string) string {
	for _, line := range strings.Split(n.stdout.String(), "\n") {
		var k, a string
		if _, err := fmt.Sscanf(line, "listening kind=%s addr=%s", &k, &a); err == nil && k == kind {
			return a
		}
	}
	return ""
}

// line returns the first stdout line starting with prefix, or "".
func (n *node) line(prefix string) string {
	for _, line := range strings.Split(n.stdout.String(), "\n") {
		if strings.HasPrefix(line, prefix) {
			return line
		}
	}
	return ""
}

// authority is one directory authority running in process.
type authority struct {
	entry directory.AuthorityEntry
	auth  *directory.Authority
	trust directory.AuthoritySet
}

// startAuthority runs one authority with a 3 s interval, testnet parameters,
// the given model catalog and prober.
func startAuthority(t *testing.T, models []directory.ModelConfig, prober directory.Prober) *authority {
	t.Helper()
	dir := t.TempDir()
	ks, err := keys.Open(dir, keys.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	entry := directory.EntryFor("auth0", ln.Addr().String(), ks.Identity(), nil)
	trust, err := directory.NewAuthoritySet([]directory.AuthorityEntry{entry}, false)
	if err != nil {
		t.Fatal(err)
	}
	cfg := directory.AuthorityConfig{
		DataDir: dir, Authorities: []directory.AuthorityEntry{entry}, Interval: 3 * time.Second, VoteDelay: time.Second, DistDelay: time.Second,
		Params: map[string]int64{directory.ParamStableUptime: 0, directory.ParamGuardUptime: 0,
			directory.ParamGuardMinTPS: 0, directory.ParamDescriptorMaxAge: 3600, directory.ParamValidPeriods: 3},
		Models: models, Prober: prober, ProbeTimeout: time.Second, MaxRelaysPerAddr: -1, UploadRate: 1000, UploadBurst: 1000,
	}
	a, err := directory.NewAuthority(cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("authority did not stop")
		}
	})
	return &authority{entry: entry, auth: a, trust: trust}
}

// daemonEnv is an Env with a discard logger printing to out.
func daemonEnv(out *syncBuffer) daemon.Env {
	return daemon.Env{Log: slog.New(slog.DiscardHandler), Stdout: out, Stderr: out}
}
