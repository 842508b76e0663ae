// Package relay is the UNFED relay node: it owns the process-level wiring of
// a relay (keys, listeners, links, circuits, the compute and MPC roles,
// descriptor publication, the directory cache) and the shared building
// blocks under it (relay/keys, relay/config, relay/obs, relay/link,
// relay/cell, ...). cmd/unfed-relay calls Run; authorities use NewLinkProber.
// spec/09-relay-operation.md describes what a running relay does.
//
// Files: config.go (the configuration), relay.go (Run: start-up order and
// shutdown), listeners.go (link listeners and accept loops), dialer.go (the
// relay-to-relay link pool behind EXTEND), compute.go (the compute, party and
// dealer roles), capture.go (the audit capture, testing only), descriptor.go
// (the signed descriptor), prober.go (the reachability prober authorities
// use).
package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/relay/circuit"
	"github.com/unfed/unfed/relay/daemon"
	"github.com/unfed/unfed/relay/hop"
	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/relay/link"
	"github.com/unfed/unfed/relay/obs"
	"github.com/unfed/unfed/transports"
	"github.com/unfed/unfed/transports/onion"
)

// rotateCheck is how often the onion key's age is checked.
const rotateCheck = time.Hour

// runner is one running relay.
type runner struct {
	cfg      *Config
	st       *settings
	env      daemon.Env
	log      *slog.Logger
	store    *keys.Store
	reg      *prometheus.Registry
	linkOpts link.Options

	served    *served
	pool      *linkPool
	sw        *circuit.Switch
	listeners []*orListener
	pub       *directory.Publisher
	tor       *onion.Tor // nil without tor.enabled
}

// Run runs a relay until ctx is canceled, then shuts it down and returns nil.
// It returns an error when the relay cannot start.
func Run(ctx context.Context, cfg Config, env daemon.Env) error {
	st, err := cfg.check()
	if err != nil {
		return err
	}
	log := env.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &runner{cfg: &cfg, st: st, env: env, log: log, reg: obs.NewRegistry()}
	if r.store, err = keys.Open(cfg.DataDir, keys.Options{}); err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	fp := r.store.Identity().Fingerprint()
	log.Info("relay identity", "fingerprint", fp.String(), "nickname", cfg.Nickname)
	lm, err := link.NewMetrics(r.reg)
	if err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	r.linkOpts = link.Options{Metrics: lm}
	var capture func(hop.CaptureDir, []byte)
	if cfg.AuditCapture {
		cl, err := openCapture(cfg.DataDir, log)
		if err != nil {
			return err
		}
		// Deferred before served.close, so it runs after it: no session
		// records into a closed file.
		defer cl.close()
		capture = cl.record
		log.Warn("recording every compute and edge message in plaintext (audit_capture): never do this on a real relay")
	}
	var cons consensusFunc // set once the directory cache exists, before any circuit
	econ, err := newEconomy(&cfg, r.store.Identity(), &cons, log)
	if err != nil {
		return err
	}
	defer econ.close() // after served.close: no session redeems into a closed store
	var pay hop.Payments
	if econ != nil {
		pay = econ
	}
	if r.served, err = loadCompute(&cfg, st, r.reg, log, capture, r.store.Identity(), &cons, pay); err != nil {
		return err
	}
	defer r.served.close()

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	if r.tor, err = StartTor(ctx, cfg.Tor, cfg.DataDir, log); err != nil {
		cancel()
		return fmt.Errorf("relay: %w", err)
	}
	if r.tor != nil {
		// Deferred first, so it runs last: after the listeners and links.
		defer r.tor.Close()
	}
	r.pool = newLinkPool(ctx, r.store, r.linkOpts, log)
	r.pool.allowPrivate = cfg.ExtendAllowPrivate
	if cfg.ExtendAllowPrivate {
		log.Warn("extend_allow_private_addresses: circuits may extend to loopback and private addresses (test networks only)")
	}
	r.pool.tor = r.tor
	if cfg.Debug.RecordLinks != "" {
		rec, err := newLinkRecorder(cfg.Debug.RecordLinks)
		if err != nil {
			cancel()
			return err
		}
		defer rec.close()
		r.pool.rec = rec
		log.Warn("recording every received link frame (debug.record_links): never do this on a public relay")
	}
	// Shutdown, in order: stop accepting (listeners close with ctx and
	// below), stop every goroutine, close every link (which destroys every
	// circuit and ends its compute session), then the pool's dials.
	defer func() {
		cancel()
		r.closeListeners()
		wg.Wait()
		if r.sw != nil {
			r.sw.Close()
		}
		r.pool.close()
	}()
	cc := circuit.Config{Identity: r.store.Identity().Public, OnionKeys: r.store.OnionKeys, Dialer: r.pool,
		Logger: log, Registerer: r.reg}
	if r.served != nil {
		cc.Handler = r.served.svc.CircuitHandler()
	}
	// Every bridge keeps a directory cache, so its users fetch documents
	// through it and never contact an authority (04-directory §10.2).
	var cache *directory.Cache
	if cfg.Dir.Listen != "" || st.has(directory.RoleBridge) || st.has(directory.RoleVerifier) || econ != nil {
		if cache, err = r.newCache(); err != nil {
			return err
		}
		if cache != nil {
			cons = cache.Fetcher.Current
		}
		dh := dirHandler{inner: cc.Handler}
		if cache != nil {
			dh.docs = cache.Handler()
		}
		cc.Handler = dh
	}
	if econ != nil {
		cc.LinkHandler = econ
	}
	if r.sw, err = circuit.New(cc); err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	if econ != nil {
		econ.attach(r.sw, r.reg)
	}
	wg.Add(1)
	go func() { defer wg.Done(); r.sw.Run(ctx) }()

	if err := r.openListeners(ctx); err != nil {
		return err
	}
	r.serveListeners(&wg)
	// Fail at start, not at the first upload, on a descriptor that cannot be
	// signed (a bad nickname, contact or family).
	if _, err := r.signDescriptor(time.Now()); err != nil {
		return fmt.Errorf("relay: descriptor: %w", err)
	}

	// A bridge is unlisted: it never uploads its descriptor to the
	// authorities; it hands it to clients in the link handshake instead.
	if len(cfg.Authorities) > 0 && !st.has(directory.RoleBridge) {
		if err := r.startPublisher(ctx, &wg); err != nil {
			return err
		}
	}
	if cache != nil {
		if err := r.startCache(ctx, &wg, cache); err != nil {
			return err
		}
	}
	if cfg.Metrics.Listen != "" {
		ms, err := obs.ListenMetrics(cfg.Metrics.Listen, r.reg, r.health, log)
		if err != nil {
			return fmt.Errorf("relay: %w", err)
		}
		defer ms.Close()
		env.Announce("metrics", ms.Addr())
	}
	if cfg.Debug.PprofAddr != "" {
		ps, err := obs.ListenPprof(cfg.Debug.PprofAddr, cfg.Debug.PprofAllowRemote, log)
		if err != nil {
			return fmt.Errorf("relay: %w", err)
		}
		defer ps.Close()
		log.Warn("serving Go profiles at /debug/pprof/ (debug.pprof_addr): whoever reaches this address sees the process's stacks and memory use", "addr", ps.Addr())
		env.Announce("pprof", ps.Addr())
	}
	for _, l := range r.listeners {
		env.Announce(l.kind, l.addr)
		if l.transport == "obfs4" && env.Stdout != nil {
			fmt.Fprintln(env.Stdout, transports.BridgeLine(advertiseAddr(l.addr, cfg.OR.Address), fp, l.args))
		}
	}
	wg.Add(1)
	go func() { defer wg.Done(); r.rotateOnion(ctx) }()
	if econ != nil {
		wg.Add(1)
		go func() { defer wg.Done(); econ.run(ctx) }()
	}

	<-ctx.Done()
	log.Info("relay shutting down")
	return nil
}

// health is /healthz: listeners are up once the metrics server runs; with
// authorities configured, at least one descriptor upload must have succeeded.
func (r *runner) health() error {
	if r.pub == nil {
		return nil
	}
	for _, ok := range r.pub.Uploaded() {
		if ok {
			return nil
		}
	}
	return errors.New("relay: descriptor not uploaded to any authority yet")
}

// startPublisher uploads the descriptor to every authority.
func (r *runner) startPublisher(ctx context.Context, wg *sync.WaitGroup) error {
	var addrs []string
	for _, a := range r.cfg.Authorities {
		if a.Address == "" {
			return fmt.Errorf("relay: authority %q has no address", a.Name)
		}
		addrs = append(addrs, a.Address)
	}
	r.pub = &directory.Publisher{Authorities: addrs, Interval: r.publishInterval(), Sign: r.signDescriptor, Logger: r.log}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := r.pub.Run(ctx); err != nil && ctx.Err() == nil {
			r.log.Error("relay: publisher stopped", "err", err)
		}
	}()
	return nil
}

// startCache serves the consensus to clients from a verified copy.
// newCache returns the directory cache of a relay with dir.listen or role
// bridge; a bridge without authorities has none.
func (r *runner) newCache() (*directory.Cache, error) {
	if len(r.cfg.Authorities) == 0 {
		if r.cfg.Dir.Listen != "" {
			return nil, errors.New("relay: dir.listen needs authorities to fetch the consensus from")
		}
		r.log.Warn("relay: a bridge without authorities keeps no directory cache; its users cannot fetch the consensus through it")
		return nil, nil
	}
	pq, err := directory.RequirePQFor(r.cfg.RequirePQSignatures, r.cfg.Authorities)
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	trust, err := directory.NewAuthoritySet(r.cfg.Authorities, pq)
	if err != nil {
		return nil, fmt.Errorf("relay: authorities: %w", err)
	}
	var srcs []string
	for _, a := range r.cfg.Authorities {
		srcs = append(srcs, a.Address)
	}
	return &directory.Cache{Fetcher: &directory.Fetcher{Sources: srcs, Trust: trust,
		Store: &directory.Store{Dir: r.cfg.DataDir}, Logger: r.log}}, nil
}

// startCache keeps the cache fresh and, with dir.listen, serves it over HTTP.
func (r *runner) startCache(ctx context.Context, wg *sync.WaitGroup, cache *directory.Cache) error {
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := cache.Run(ctx); err != nil && ctx.Err() == nil {
			r.log.Error("relay: directory cache stopped", "err", err)
		}
	}()
	if r.cfg.Dir.Listen == "" {
		return nil
	}
	ln, err := net.Listen("tcp", r.cfg.Dir.Listen)
	if err != nil {
		return fmt.Errorf("relay: dir listener: %w", err)
	}
	srv := &http.Server{Handler: cache.Handler(), ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: 30 * time.Second, WriteTimeout: 2 * time.Minute, MaxHeaderBytes: 16 << 10}
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.log.Error("relay: directory cache server stopped", "err", err)
		}
	}()
	go func() {
		defer wg.Done()
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if srv.Shutdown(sctx) != nil {
			srv.Close()
		}
	}()
	r.env.Announce("dir", ln.Addr().String())
	return nil
}

// rotateOnion replaces the onion key when it is due and republishes.
func (r *runner) rotateOnion(ctx context.Context) {
	t := time.NewTicker(rotateCheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rotated, err := r.store.RotateOnionIfDue()
		if err != nil {
			r.log.Error("relay: onion key rotation failed", "err", err)
			continue
		}
		if rotated {
			r.log.Info("relay: onion key rotated")
			if r.pub != nil {
				r.pub.Changed()
			}
		}
	}
}
