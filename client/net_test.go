package client

// An in-process UNFED network for the client's tests: one directory
// authority (2 s voting interval) and relays made from relay/circuit,
// relay/hop, transports/tcp and relay/link, publishing real descriptors.
// Everything binds 127.0.0.1 and stops when the test binary's TestMain ends.

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unfed/unfed/compute/gguf"
	"github.com/unfed/unfed/compute/model"
	"github.com/unfed/unfed/compute/modeltest"
	"github.com/unfed/unfed/compute/mpc"
	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/directory/dirtest"
	"github.com/unfed/unfed/relay/cell"
	"github.com/unfed/unfed/relay/circuit"
	"github.com/unfed/unfed/relay/hop"
	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/relay/link"
	"github.com/unfed/unfed/transports/tcp"
)

// testRelay is one in-process relay.
type testRelay struct {
	name   string
	store  *keys.Store
	svc    *hop.Service
	sw     *circuit.Switch
	ln     *link.Listener
	desc   directory.Descriptor
	reg    *prometheus.Registry // link metrics of accepted links
	cancel context.CancelFunc
	once   sync.Once
}

// linkBytes is the wire bytes sent plus received on the links the relay
// accepted (for the guard: its links from clients).
func (r *testRelay) linkBytes() float64 {
	mfs, err := r.reg.Gather()
	if err != nil {
		return -1
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() == "unfed_link_received_bytes_total" || mf.GetName() == "unfed_link_sent_bytes_total" {
			for _, m := range mf.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}

// stop kills the relay: its listener and every link close.
func (r *testRelay) stop() {
	r.once.Do(func() {
		r.cancel()
		r.ln.Close()
		r.sw.Close()
		if r.svc != nil {
			r.svc.Close()
		}
	})
}

// relayDialer opens relay-to-relay links for EXTEND over tcp.
type relayDialer struct {
	store *keys.Store
	mu    sync.Mutex // guards links
	links map[keys.Fingerprint]*link.Conn
}

func (d *relayDialer) Dial(ctx context.Context, fp keys.Fingerprint, specs []cell.LinkSpec) (circuit.Link, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if l, ok := d.links[fp]; ok {
		select {
		case <-l.Done():
		default:
			return l, nil
		}
	}
	for _, s := range specs {
		if s.Transport != "tcp" {
			continue
		}
		var nd net.Dialer
		conn, err := nd.DialContext(ctx, "tcp", s.Addr)
		if err != nil {
			return nil, err
		}
		l, err := link.Dial(ctx, conn, link.DialConfig{Identity: d.store, ExpectFingerprint: fp, ExpectLinkKey: s.LinkKey})
		if err != nil {
			return nil, err
		}
		d.links[fp] = l
		return l, nil
	}
	return nil, fmt.Errorf("no tcp link spec")
}

// startRelay starts a relay serving svc (nil for a guard) and publishes its
// descriptor to the authorities.
func startRelay(name string, authorities []string, roles []directory.Role, ci *directory.ComputeInfo, mi *directory.MPCInfo,
	di *directory.DealerInfo, svc *hop.Service, store *keys.Store) (*testRelay, error) {
	ctx, cancel := context.WithCancel(context.Background())
	r := &testRelay{name: name, store: store, svc: svc, cancel: cancel}
	tl, err := tcp.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		cancel()
		return nil, err
	}
	r.reg = prometheus.NewRegistry()
	lm, err := link.NewMetrics(r.reg)
	if err != nil {
		cancel()
		return nil, err
	}
	if r.ln, err = link.NewListener(tl, link.ListenerConfig{Server: link.ServerConfig{Store: store, Options: link.Options{Metrics: lm}}}); err != nil {
		cancel()
		return nil, err
	}
	cc := circuit.Config{Identity: store.Identity().Public, OnionKeys: store.OnionKeys,
		Dialer: &relayDialer{store: store, links: map[keys.Fingerprint]*link.Conn{}}}
	if svc != nil {
		cc.Handler = svc.CircuitHandler()
	}
	if r.sw, err = circuit.New(cc); err != nil {
		cancel()
		return nil, err
	}
	go func() {
		for {
			c, err := r.ln.Accept()
			if err != nil {
				return
			}
			_, isRelay := c.Peer()
			r.sw.Accept(c, !isRelay)
		}
	}()
	cur, _ := store.OnionKeys()
	r.desc = directory.Descriptor{
		Nickname:   name,
		Onion:      directory.OnionPublicOf(cur),
		LinkKey:    store.Link().Public,
		LinkCert:   keys.CertifyLink(store.Identity(), store.Link().Public, time.Now().Add(365*24*time.Hour)),
		Transports: []directory.Transport{{Name: "tcp", Addr: r.ln.Addr().String()}},
		Roles:      roles,
		Compute:    ci,
		MPC:        mi,
		Dealer:     di,
		Capacity:   directory.Capacity{Sessions: 10, TokensPerSec: 100},
		Software:   "unfed-client-test",
	}
	pub := &directory.Publisher{Authorities: authorities, Interval: time.Minute, Sign: func(now time.Time) ([]byte, error) {
		d := r.desc
		d.Published = now
		return d.Sign(store.Identity())
	}}
	go pub.Run(ctx)
	return r, nil
}

// testNet is the shared network of this package's tests.
type testNet struct {
	authorities []directory.AuthorityEntry
	modelPath   string
	modelID     string
	relays      map[string]*testRelay
	auth        *directory.Authority
	prober      *dirtest.Prober // the authority's: a stopped relay is set down
	stopAuth    func()
	dirs        []string

	mu      sync.Mutex // guards the kill switch below
	killAt  int        // kill the last-shard relay at its killAt-th edge message; 0: off
	edges   map[string]int
	killed  string
	onKill  chan struct{}
	holdAt  int           // hold the holdAt-th edge message until release is closed; 0: off
	held    chan struct{} // closed when a message is being held
	release chan struct{}
	// clientHook, when set, sees every client message a compute relay
	// receives (by relay name), before the relay handles it.
	clientHook func(relay string, o hop.Observation)

	// stall, when set, makes the last-shard relays hold every edge message
	// until it is closed (at most 10 s); stalled records the circuits whose
	// messages were held, per relay.
	stall   chan struct{}
	stalled map[string]map[uint64]bool

	// bundle is the model's client bundle the compute relays serve, and
	// tamper, when set, flips one byte of its embedding in what they serve.
	bundle []byte
	tamper atomic.Bool
}

// serveBundle is the compute relays' hop.Config.Bundle.
func (n *testNet) serveBundle() ([]byte, error) {
	if !n.tamper.Load() {
		return n.bundle, nil
	}
	f, err := gguf.Parse(n.bundle)
	if err != nil {
		return nil, err
	}
	ti, _ := f.Tensor("token_embd.weight")
	b := bytes.Clone(n.bundle)
	b[f.DataOffset+ti.Offset+ti.Size/2] ^= 0x01
	return b, nil
}

// armHold makes the last-shard relay that receives its k-th edge message
// (counting from now) wait, before processing it, until the returned release
// function is called; held is closed when that happens.
func (n *testNet) armHold(k int) (held <-chan struct{}, release func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.edges = map[string]int{}
	n.holdAt, n.held, n.release = k, make(chan struct{}), make(chan struct{})
	rel := n.release
	var once sync.Once
	return n.held, func() { once.Do(func() { close(rel) }) }
}

// observe is the Observe hook of the last-shard relays: it counts the edge
// messages each receives and, when armed, stops the relay receiving the
// killAt-th one before it can answer.
func (n *testNet) observe(name string, o hop.Observation) {
	if o.Kind != hop.ObsEdge {
		return
	}
	n.mu.Lock()
	n.edges[name]++
	kill := n.killAt > 0 && n.killed == "" && n.edges[name] == n.killAt
	if kill {
		n.killed = name
	}
	var held, release chan struct{}
	if n.holdAt > 0 && n.edges[name] == n.holdAt {
		held, release, n.holdAt = n.held, n.release, 0
	}
	stall := n.stall
	if stall != nil {
		if n.stalled[name] == nil {
			n.stalled[name] = map[uint64]bool{}
		}
		n.stalled[name][o.Circuit] = true
	}
	n.mu.Unlock()
	if stall != nil {
		select {
		case <-stall:
		case <-time.After(10 * time.Second):
		}
	}
	if held != nil {
		close(held)
		select {
		case <-release:
		case <-time.After(20 * time.Second):
		}
	}
	if kill {
		done := make(chan struct{})
		go func() {
			n.relays[name].stop()
			// As the authority's real probe would: the relay is down.
			n.prober.SetDown(n.relays[name].store.Identity().Fingerprint(), true)
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
		}
		close(n.onKill)
	}
}

// armKill makes the next last-shard relay that receives its k-th edge
// message (counting from now) die.
func (n *testNet) armKill(k int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.edges = map[string]int{}
	n.killAt = k
	n.onKill = make(chan struct{})
}

// armStall makes the last-shard relays hold every edge message from now on;
// circuits reports how many distinct circuits had a message held, and
// release ends the stall.
func (n *testNet) armStall() (circuits func() int, release func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.edges = map[string]int{}
	n.stall, n.stalled = make(chan struct{}), map[string]map[uint64]bool{}
	stall := n.stall
	var once sync.Once
	return func() int {
			n.mu.Lock()
			defer n.mu.Unlock()
			c := 0
			for _, m := range n.stalled {
				c += len(m)
			}
			return c
		}, func() {
			once.Do(func() {
				n.mu.Lock()
				n.stall = nil
				n.mu.Unlock()
				close(stall)
			})
		}
}

func (n *testNet) edgeCounts() (map[string]int, string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return maps.Clone(n.edges), n.killed
}

var (
	netOnce sync.Once
	theNet  *testNet
	netErr  error
)

// sharedNet starts the network on first use.
func sharedNet(t testing.TB) *testNet {
	t.Helper()
	netOnce.Do(func() { theNet, netErr = startNet() })
	if netErr != nil {
		t.Fatalf("test network: %v", netErr)
	}
	return theNet
}

func TestMain(m *testing.M) {
	code := m.Run()
	if theNet != nil {
		theNet.close()
	}
	os.Exit(code)
}

func (n *testNet) close() {
	for _, r := range n.relays {
		r.stop()
	}
	n.stopAuth()
	for _, d := range n.dirs {
		os.RemoveAll(d)
	}
}

func (n *testNet) tempDir() (string, error) {
	d, err := os.MkdirTemp("", "unfed-client-test-")
	if err == nil {
		n.dirs = append(n.dirs, d)
	}
	return d, err
}

// Relays of the test network. The catalog splits stories260K's 5 layers
// into [0,1) [1,3) [3,5): anonymous circuits use s0 s1 s2; s2 and s2b serve
// the same range, so one of them can fail. Confidential circuits use two
// stages [0,2) and [2,5) with parties p1a p1b and p2a p2b p2c, and dealers d1
// d2.
func startNet() (*testNet, error) {
	n := &testNet{relays: map[string]*testRelay{}, edges: map[string]int{}}
	var err error
	if n.modelPath, err = modeltest.Find("stories260K.gguf"); err != nil {
		return nil, err
	}
	man, err := model.ComputeManifest(n.modelPath, 0)
	if err != nil {
		return nil, err
	}
	if n.bundle, _, err = model.BundleBytes(n.modelPath); err != nil {
		return nil, err
	}
	root := man.Root()
	n.modelID = man.IDHex()

	adir, err := n.tempDir()
	if err != nil {
		return nil, err
	}
	aks, err := keys.Open(adir, keys.Options{})
	if err != nil {
		return nil, err
	}
	aln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	n.authorities = []directory.AuthorityEntry{directory.EntryFor("auth0", aln.Addr().String(), aks.Identity(), nil)}
	shards := [][2]int{{0, 1}, {1, 3}, {3, 5}}
	var sc []directory.ShardConfig
	for _, s := range shards {
		sc = append(sc, directory.ShardConfig{First: s[0], Last: s[1]})
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	n.prober = &dirtest.Prober{}
	auth, err := directory.NewAuthority(directory.AuthorityConfig{
		DataDir: adir, Authorities: n.authorities, Interval: 2 * time.Second, VoteDelay: time.Second, DistDelay: time.Second,
		Prober: n.prober, MaxRelaysPerAddr: -1, UploadRate: 1000, UploadBurst: 1000,
		Params: map[string]int64{directory.ParamStableUptime: 0, directory.ParamGuardUptime: 0, directory.ParamGuardMinTPS: 50,
			directory.ParamDescriptorMaxAge: 3600, directory.ParamValidPeriods: 6},
		Models: []directory.ModelConfig{{ID: n.modelID, Architecture: "llama", Layers: 5, Shards: sc, TensorHashRoot: hex.EncodeToString(root[:])}},
	}, quiet, nil)
	if err != nil {
		return nil, err
	}
	n.auth = auth
	actx, acancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { auth.Serve(actx, aln); close(done) }()
	n.stopAuth = func() { acancel(); <-done }
	addrs := []string{aln.Addr().String()}

	newStore := func() (*keys.Store, error) {
		d, err := n.tempDir()
		if err != nil {
			return nil, err
		}
		return keys.Open(d, keys.Options{})
	}
	add := func(name string, roles []directory.Role, ci *directory.ComputeInfo, mi *directory.MPCInfo, di *directory.DealerInfo, svc *hop.Service, st *keys.Store) error {
		var err error
		if st == nil {
			if st, err = newStore(); err != nil {
				return err
			}
		}
		r, err := startRelay(name, addrs, roles, ci, mi, di, svc, st)
		if err != nil {
			return err
		}
		n.relays[name] = r
		return nil
	}
	if err := add("guard", []directory.Role{directory.RoleGuard}, nil, nil, nil, nil, nil); err != nil {
		return nil, err
	}
	compute := func(name string, first, last int) error {
		sh, err := model.Load(n.modelPath, model.ShardOptions{First: first, Last: last, Threads: 1})
		if err != nil {
			return err
		}
		st, err := newStore()
		if err != nil {
			return err
		}
		hc := hop.Config{ModelID: n.modelID, Shard: sh, AllowPlain: true, Identity: st.Identity(), Bundle: n.serveBundle}
		hc.Observe = func(o hop.Observation) {
			if first == 3 {
				n.observe(name, o)
			}
			n.mu.Lock()
			hook := n.clientHook
			n.mu.Unlock()
			if hook != nil && o.Kind == hop.ObsClient {
				hook(name, o)
			}
		}
		svc, err := hop.NewService(hc)
		if err != nil {
			return err
		}
		return add(name, []directory.Role{directory.RoleCompute}, &directory.ComputeInfo{Model: n.modelID,
			Layers: directory.LayerRange{First: first, Last: last}}, nil, nil, svc, st)
	}
	for _, c := range []struct {
		name        string
		first, last int
	}{{"s0", 0, 1}, {"s1", 1, 3}, {"s2", 3, 5}, {"s2b", 3, 5}} {
		if err := compute(c.name, c.first, c.last); err != nil {
			return nil, err
		}
	}
	for _, st := range []struct {
		first, last int
		names       []string
	}{{0, 2, []string{"p1a", "p1b"}}, {2, 5, []string{"p2a", "p2b", "p2c"}}} {
		w, err := mpc.LoadStageWeights(n.modelPath, st.first, st.last)
		if err != nil {
			return nil, err
		}
		ps, err := mpc.PrepareStage(w, mpc.Params{})
		if err != nil {
			return nil, err
		}
		for _, name := range st.names {
			ks, err := newStore()
			if err != nil {
				return nil, err
			}
			svc, err := hop.NewService(hop.Config{ModelID: n.modelID, Party: &hop.PartyConfig{Stage: ps, Layers: 5}, Identity: ks.Identity()})
			if err != nil {
				return nil, err
			}
			mi := &directory.MPCInfo{Model: n.modelID, Layers: directory.LayerRange{First: st.first, Last: st.last}}
			if err := add(name, []directory.Role{directory.RoleMPC}, nil, mi, nil, svc, ks); err != nil {
				return nil, err
			}
		}
	}
	mcfg, err := model.ReadConfig(n.modelPath)
	if err != nil {
		return nil, err
	}
	for _, name := range []string{"d1", "d2"} {
		ks, err := newStore()
		if err != nil {
			return nil, err
		}
		svc, err := hop.NewService(hop.Config{ModelID: n.modelID, Dealer: &hop.DealerConfig{Model: mcfg}, Identity: ks.Identity()})
		if err != nil {
			return nil, err
		}
		if err := add(name, []directory.Role{directory.RoleDealer}, nil, nil, &directory.DealerInfo{Model: n.modelID}, svc, ks); err != nil {
			return nil, err
		}
	}
	// Wait for a consensus that lists every relay with its flags.
	deadline := time.Now().Add(40 * time.Second)
	for time.Now().Before(deadline) {
		if c := auth.Current(); c != nil && n.complete(c) {
			return n, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	n.close()
	return nil, fmt.Errorf("no complete consensus within 40 s")
}

// settle waits until the authority's consensus no longer lists a relay an
// earlier test stopped as Running (clients fetching it then do not pick
// it), for tests that count circuit builds.
func (n *testNet) settle(t testing.TB) {
	t.Helper()
	_, killed := n.edgeCounts()
	if killed == "" {
		return
	}
	fp := n.relays[killed].store.Identity().Fingerprint()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if c := n.auth.Current(); c != nil {
			if rs := c.Relay(fp); rs == nil || !rs.HasFlag(directory.FlagRunning) {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the consensus still lists %s, stopped by an earlier test, as Running after 30 s", killed)
}

func (n *testNet) complete(c *directory.Consensus) bool {
	want := map[string]directory.Flag{"guard": directory.FlagGuard, "s0": directory.FlagCompute, "s1": directory.FlagCompute,
		"s2": directory.FlagCompute, "s2b": directory.FlagCompute, "p1a": directory.FlagMPC, "p1b": directory.FlagMPC,
		"p2a": directory.FlagMPC, "p2b": directory.FlagMPC, "p2c": directory.FlagMPC, "d1": directory.FlagDealer, "d2": directory.FlagDealer}
	for name, f := range want {
		rs := c.Relay(n.relays[name].store.Identity().Fingerprint())
		if rs == nil || !rs.HasFlag(f) || !rs.HasFlag(directory.FlagRunning) {
			return false
		}
	}
	return true
}
