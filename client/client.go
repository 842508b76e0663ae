// Package client is the UNFED client: the local inference proxy a person
// runs. It owns directory bootstrap and verification on the client side,
// guard state, path selection, circuit building and the per-token loop, and
// it serves the OpenAI-compatible API (client/openai) and the SOCKS5 front
// (client/socks). cmd/unfed-client calls Run.
//
// Files: client.go (configuration and the daemon's wiring), models.go (local
// model files: tokenizer, shape, manifest id), guard.go (the persistent guard
// set), path.go (path selection), circuits.go (guard links, circuit build,
// SETUP messages), session.go (one circuit's compute sessions and the
// per-token exchange of spec/03-compute.md), backend.go (openai.Backend:
// isolation, sampling, failover).
//
// The client never logs prompts, generated text, token ids, keys or the
// addresses of its callers.
package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/unfed/unfed/client/openai"
	"github.com/unfed/unfed/client/socks"
	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/relay/circuit"
	"github.com/unfed/unfed/relay/daemon"
	"github.com/unfed/unfed/relay/obs"
	"github.com/unfed/unfed/transports"
	"github.com/unfed/unfed/transports/onion"
)

// Config is the client's configuration. Every field has a one-sentence doc;
// the zero value of a field means its default.
type Config struct {
	DataDir string        `mapstructure:"data_dir" doc:"Directory for the cached consensus and guard state (created mode 0700)."`
	Log     obs.LogConfig `mapstructure:"log"`
	Metrics struct {
		Listen string `mapstructure:"listen" doc:"Address for /metrics and /healthz (host:port, :0 picks a port; empty disables)."`
	} `mapstructure:"metrics"`
	API struct {
		Listen string `mapstructure:"listen" doc:"Address of the OpenAI-compatible HTTP API (loopback host:port, :0 picks a port)."`
	} `mapstructure:"api"`
	SOCKS struct {
		Listen string `mapstructure:"listen" doc:"Address of the SOCKS5 front serving http://<model>.unfed/ (loopback host:port; empty disables)."`
	} `mapstructure:"socks"`
	Authorities []directory.AuthorityEntry `mapstructure:"authorities" doc:"The directory authorities whose signatures the client trusts, and where to fetch the consensus."`
	DirSources  []string                   `mapstructure:"dir_sources" doc:"Extra consensus sources (relay directory caches), host:port each."`
	// RequirePQSignatures decides whether a consensus needs ML-DSA-65 signatures.
	RequirePQSignatures string          `mapstructure:"require_pq_signatures" doc:"Require ML-DSA-65 consensus signatures: auto (when every authority lists an ML-DSA key; the default), on, off."`
	Models              []ModelConfig   `mapstructure:"models" doc:"Local model files or bundles the client can serve (optional: without them the client fetches a catalog model's bundle from a relay on first use, verifies it against the consensus and caches it in data_dir/bundles)."`
	Transport           string          `mapstructure:"transport" doc:"Preferred transport to the guard: tcp, quic or obfs4 (tcp when the guard lacks it)."`
	Bridges             []string        `mapstructure:"bridges" doc:"Bridge lines (Tor format: TRANSPORT ADDR FINGERPRINT [k=v ...]); when set they are the first hop instead of public guards."`
	ManagedPT           ManagedPTConfig `mapstructure:"managed_pt"`
	Guards              GuardConfig     `mapstructure:"guards"`
	Wallet              WalletConfig    `mapstructure:"wallet"`
	Circuit             CircuitConfig   `mapstructure:"circuit"`
	Tor                 onion.Config    `mapstructure:"tor"`
}

// ManagedPTConfig names an external pluggable-transport binary (Tor's PT 1.0,
// e.g. Debian's obfs4proxy) the client runs to reach bridges or guards whose
// transport is Method, instead of the in-process implementation.
type ManagedPTConfig struct {
	Path   string   `mapstructure:"path" doc:"Pluggable-transport executable, e.g. /usr/bin/obfs4proxy (empty: use in-process transports)."`
	Method string   `mapstructure:"method" doc:"Transport the executable provides and the client reaches through it, e.g. obfs4."`
	Args   []string `mapstructure:"args" doc:"Extra command-line arguments for the executable."`
}

// CircuitConfig tunes circuits and the per-token loop.
type CircuitConfig struct {
	Mode          string        `mapstructure:"mode" doc:"Default circuit mode: confidential (every layer on secret shares; no relay sees a token, activation or logit) or anonymous (plaintext layers: relays cannot tell who asked, compute relays can read the content). A request picks another with the model name \"<id>:anonymous\" or \"<id>:confidential\"."`
	Hybrid        bool          `mapstructure:"hybrid" doc:"Use X25519+X-Wing hybrid circuit handshakes."`
	TopK          int           `mapstructure:"top_k" doc:"Unused: the client applies the output head itself in both modes and has every logit (kept so that older configs load)."`
	GreedyTopK    int           `mapstructure:"greedy_top_k" doc:"Unused: the client applies the output head itself in both modes, so no relay learns that a request is greedy (kept so that older configs load)."`
	Retries       int           `mapstructure:"retries" doc:"Replacement circuits one request may build after faults (not capacity refusals) before it gives up."`
	MaxConcurrent int           `mapstructure:"max_concurrent" doc:"Generations this client runs at once; more wait for a slot (0 means 32)."`
	MaxQueued     int           `mapstructure:"max_queued" doc:"Generations that may wait for a slot; beyond it a request gets 429 (0 means 256, negative: none wait)."`
	QueueTimeout  time.Duration `mapstructure:"queue_timeout" doc:"Longest wait for a generation slot (then 429) or for relays at capacity (then 503), both with Retry-After."`
	StepTimeout   time.Duration `mapstructure:"step_timeout" doc:"Longest wait for one reply of a hop (a SETUP_OK or the logits of one step)."`
	BuildTimeout  time.Duration `mapstructure:"build_timeout" doc:"Longest time to build a circuit and open its compute sessions."`
	// Shape and CoverTokens are the guard traffic-shaping policy (spec/03-compute.md §8.1).
	Shape       bool `mapstructure:"shape" doc:"Shape traffic so the guard (and every hop between) sees each message the client sends only as its size rounded up to a power of two (answers are FINAL_HIDDEN rows of one size already)."`
	CoverTokens int  `mapstructure:"cover_tokens" doc:"With shape, in anonymous mode: after a generation, send cover steps (padding of a decode step's size, answered by the last hop with padding of a FINAL_HIDDEN's size) until the number of steps is a multiple of this (0: none)."`
	// MaxBundleBytes bounds a bundle fetched from a relay.
	MaxBundleBytes int64 `mapstructure:"max_bundle_bytes" doc:"Largest model bundle the client fetches from a relay (0 means 8 GiB)."`
	NoCommitments  bool  `mapstructure:"no_commitments" doc:"Do not ask compute hops (anonymous circuits) or dealers and parties (confidential circuits) for signed per-step commitments (spec/11); they are checked by default."`
	// AuditPerMille and TicketDelay are the audits of spec/11 §3.
	AuditPerMille int           `mapstructure:"audit_per_mille" doc:"Fraction of steps, per mille, whose compute hops this client audits when a verifier of the model is listed: 0 means the consensus's verify-fraction (5 %), -1 never (spec/11 §3.4: a ticket shows a verifier what a compute relay of the session saw, not who asked)."`
	TicketDelay   time.Duration `mapstructure:"ticket_delay" doc:"Longest random delay before a batch of tickets is submitted (0 means 1m; negative: none, for tests)."`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	c := Config{DataDir: "unfed-client-data", Log: obs.DefaultLogConfig(), Transport: "tcp", Guards: DefaultGuardConfig(),
		Circuit: CircuitConfig{Mode: string(ModeConfidential), GreedyTopK: 1, Retries: 3, StepTimeout: 60 * time.Second, BuildTimeout: 60 * time.Second,
			MaxConcurrent: 32, MaxQueued: 256, QueueTimeout: 30 * time.Second, MaxBundleBytes: 8 << 30}}
	c.Metrics.Listen = "127.0.0.1:0"
	c.API.Listen = "127.0.0.1:8086"
	c.SOCKS.Listen = "127.0.0.1:9086"
	return c
}

func (c *Config) check() error {
	def := DefaultConfig()
	if c.Circuit.Mode == "" {
		c.Circuit.Mode = def.Circuit.Mode
	}
	if _, err := ParseMode(c.Circuit.Mode); err != nil {
		return fmt.Errorf("%w (circuit.mode)", err)
	}
	if c.Circuit.Retries < 0 {
		return errors.New("client: circuit.retries must not be negative")
	}
	if c.Circuit.CoverTokens < 0 || c.Circuit.CoverTokens > 4096 {
		return errors.New("client: circuit.cover_tokens must be in [0, 4096]")
	}
	if c.Circuit.TopK < 0 || c.Circuit.GreedyTopK < 0 {
		return errors.New("client: circuit.top_k and circuit.greedy_top_k must not be negative")
	}
	if c.Circuit.StepTimeout <= 0 {
		c.Circuit.StepTimeout = def.Circuit.StepTimeout
	}
	if c.Circuit.BuildTimeout <= 0 {
		c.Circuit.BuildTimeout = def.Circuit.BuildTimeout
	}
	if c.Circuit.MaxConcurrent <= 0 {
		c.Circuit.MaxConcurrent = def.Circuit.MaxConcurrent
	}
	switch {
	case c.Circuit.MaxQueued == 0:
		c.Circuit.MaxQueued = def.Circuit.MaxQueued
	case c.Circuit.MaxQueued < 0:
		c.Circuit.MaxQueued = 0
	}
	if c.Circuit.QueueTimeout <= 0 {
		c.Circuit.QueueTimeout = def.Circuit.QueueTimeout
	}
	if c.Circuit.AuditPerMille < -1 || c.Circuit.AuditPerMille > 1000 {
		return fmt.Errorf("client: circuit.audit_per_mille %d outside [-1, 1000]", c.Circuit.AuditPerMille)
	}
	if c.API.Listen == "" {
		return errors.New("client: api.listen is required")
	}
	if len(c.Authorities) == 0 {
		return errors.New("client: no authorities configured")
	}
	if c.Circuit.MaxBundleBytes <= 0 {
		c.Circuit.MaxBundleBytes = def.Circuit.MaxBundleBytes
	}
	if c.Tor.Enabled && c.Transport == "quic" {
		return errors.New("client: transport quic cannot be carried over Tor (tor.enabled): use tcp or obfs4")
	}
	if c.Tor.Enabled && c.ManagedPT.Path != "" {
		return errors.New("client: managed_pt and tor.enabled together are not supported: the PT process would connect directly")
	}
	return nil
}

// testGuardLinkWrap, set only by tests, wraps every guard link a client
// opens (TestGuardViewShaped records what the guard sees).
var testGuardLinkWrap func(circuit.Link) circuit.Link

// testSpareGate, set only by tests, holds every spare circuit build of a
// client started after it is set until it is closed.
var testSpareGate chan struct{}

// testSpareAtGate, set only by tests, is told (without blocking) when a
// spare build reaches testSpareGate.
var testSpareAtGate chan struct{}

// bridgeUsersFetchDirect, set only by tests, makes a client with bridges
// fetch the consensus from its authorities as before issue 23 item 6
// (TestBridgeDirectoryFetch's mutation).
var bridgeUsersFetchDirect bool

// Run runs the client until ctx is canceled.
func Run(ctx context.Context, cfg Config, env daemon.Env) error {
	if err := cfg.check(); err != nil {
		return err
	}
	log := env.Log
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	pq, err := directory.RequirePQFor(cfg.RequirePQSignatures, cfg.Authorities)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	trust, err := directory.NewAuthoritySet(cfg.Authorities, pq)
	if err != nil {
		return fmt.Errorf("client: authorities: %w", err)
	}
	d := newDialer(cfg.Transport, log)
	d.wrapGuardLink = testGuardLinkWrap
	defer d.close()
	// With Tor, the guard (and the directory) see a Tor exit's address,
	// never ours (spec/08-client-api.md §11). Tor runs until Run returns.
	tor, err := startTor(ctx, cfg.Tor, cfg.DataDir, log)
	if err != nil {
		return err
	}
	if tor != nil {
		defer tor.Close()
		d.tor = tor
	}
	var bridges *bridgeSet
	if len(cfg.Bridges) > 0 {
		lines, err := parseBridges(cfg.Bridges)
		if err != nil {
			return err
		}
		bridges = &bridgeSet{lines: lines, dialer: d, cache: map[string]bridgeEntry{}, failing: map[string]time.Time{}}
		log.Info("using bridges instead of public guards", "bridges", len(lines))
	}
	fetcher := &directory.Fetcher{Trust: trust, Store: &directory.Store{Dir: cfg.DataDir}, Logger: log}
	if bridges != nil && !bridgeUsersFetchDirect {
		// Through the bridges only: a bridge user never contacts an
		// authority or a public cache (04-directory §10.2).
		fetcher.Sources = bridgeDirSources(bridges)
		fetcher.HTTPClient = &http.Client{Transport: dirTunnel{bridges}, Timeout: dirTunnelTimeout}
		if len(cfg.DirSources) > 0 {
			log.Warn("dir_sources ignored: with bridges the consensus comes through the bridges")
		}
	} else {
		for _, a := range cfg.Authorities {
			fetcher.Sources = append(fetcher.Sources, a.Address)
		}
		fetcher.Sources = append(fetcher.Sources, cfg.DirSources...)
		if tor != nil {
			fetcher.HTTPClient = torHTTPClient(tor)
		}
	}
	guards, err := LoadGuards(cfg.DataDir, cfg.Guards, nil)
	if err != nil {
		return err
	}
	var models []*localModel
	for _, mc := range cfg.Models {
		lm, err := loadModel(mc)
		if err != nil {
			return err
		}
		log.Info("local model", "id", lm.id, "layers", lm.cfg.NLayers, "vocab", lm.cfg.Vocab)
		models = append(models, lm)
	}
	if cfg.Circuit.Mode == string(ModeAnonymous) {
		log.Warn("circuit.mode=anonymous: compute relays can read prompts and answers (they cannot tell who asked)")
	}
	if cfg.ManagedPT.Path != "" {
		if cfg.ManagedPT.Method == "" {
			return errors.New("client: managed_pt.method is required with managed_pt.path")
		}
		d.managed = &transports.PTConfig{Path: cfg.ManagedPT.Path, Method: cfg.ManagedPT.Method, Args: cfg.ManagedPT.Args}
	}
	mode, _ := ParseMode(cfg.Circuit.Mode) // checked by check
	b := &backend{cfg: cfg.Circuit, mode: mode, dir: fetcher, guards: guards, models: models, dialer: d, log: log, dataDir: cfg.DataDir,
		rng: newSamplingRand(), relays: newRelayState(nil),
		adm: newAdmission(cfg.Circuit.MaxConcurrent, cfg.Circuit.MaxQueued)}
	b.bridges = bridges
	b.pay = &payer{dir: cfg.DataDir, cfg: cfg.Wallet}
	defer b.pay.close()
	b.spares.testGate, b.spares.testAtGate = testSpareGate, testSpareAtGate
	b.sub = newSubmitter(b, cfg.Circuit.TicketDelay)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	// Circuits built ahead of need live as long as the client.
	b.life = ctx
	defer func() {
		cancel() // no refill may add a spare after the close below
		b.spares.close()
	}()
	errc := make(chan error, 3)
	wg.Go(func() { b.sub.run(ctx) })
	wg.Go(func() {
		if err := fetcher.Run(ctx); err != nil && ctx.Err() == nil {
			errc <- fmt.Errorf("client: directory: %w", err)
		}
	})

	health := func() error {
		if _, err := fetcher.Current(); err != nil {
			return err
		}
		if !b.healthy() {
			return errors.New("client: no configured model is servable")
		}
		return nil
	}
	if cfg.Metrics.Listen != "" {
		reg := obs.NewRegistry()
		if b.metrics, err = newClientMetrics(reg); err != nil {
			return fmt.Errorf("client: metrics: %w", err)
		}
		if err := registerConsensusGauges(reg, b.dir.Current); err != nil {
			return fmt.Errorf("client: metrics: %w", err)
		}
		ms, err := obs.ListenMetrics(cfg.Metrics.Listen, reg, health, log)
		if err != nil {
			return fmt.Errorf("client: %w", err)
		}
		defer ms.Close()
		ms.Handle("GET /debug/circuits", &b.recent)
		env.Announce("metrics", ms.Addr())
	}
	// Started once the backend is complete (b.metrics): a consensus
	// installed from here on starts its first spare at once.
	wg.Go(func() { b.prebuildAtStart(ctx) })

	api := withHealth(openai.NewHandler(b, log, openai.Options{}), health)
	aln, err := net.Listen("tcp", cfg.API.Listen)
	if err != nil {
		return fmt.Errorf("client: api: %w", err)
	}
	env.Announce("api", aln.Addr().String())
	wg.Go(func() {
		if err := openai.Serve(ctx, aln, api, 3*time.Second); err != nil {
			errc <- fmt.Errorf("client: api: %w", err)
		}
	})
	if cfg.SOCKS.Listen != "" {
		sln, err := net.Listen("tcp", cfg.SOCKS.Listen)
		if err != nil {
			cancel()
			return fmt.Errorf("client: socks: %w", err)
		}
		env.Announce("socks", sln.Addr().String())
		srv := &socks.Server{Handler: api, Logger: log}
		wg.Go(func() {
			if err := srv.Serve(ctx, sln); err != nil {
				errc <- fmt.Errorf("client: socks: %w", err)
			}
		})
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		cancel()
		return err
	}
}

// withHealth adds /healthz to the API listener, answering as the metrics
// listener does.
func withHealth(h http.Handler, health func() error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			h.ServeHTTP(w, r)
			return
		}
		if err := health(); err != nil {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
}
