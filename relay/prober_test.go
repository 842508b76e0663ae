package relay_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/unfed/unfed/compute/model"
	"github.com/unfed/unfed/compute/modeltest"
	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/relay"
	"github.com/unfed/unfed/relay/hop"
	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/relay/link"
	"github.com/unfed/unfed/relay/origin"
	"github.com/unfed/unfed/transports"
	"github.com/unfed/unfed/transports/onion"
)

// fakeAuthority accepts descriptor uploads and keeps the last one verified.
type fakeAuthority struct {
	srv  *httptest.Server
	mu   sync.Mutex
	last *directory.Descriptor
	byFP map[keys.Fingerprint]*directory.Descriptor
}

func newFakeAuthority(t testing.TB) *fakeAuthority {
	fa := &fakeAuthority{byFP: map[keys.Fingerprint]*directory.Descriptor{}}
	fa.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(io.LimitReader(r.Body, directory.MaxDescriptorSize))
		if err != nil || r.URL.Path != directory.PathDescriptor {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		d, err := directory.ParseDescriptor(b, time.Now())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fa.mu.Lock()
		fa.last = d
		fa.byFP[d.Fingerprint()] = d
		fa.mu.Unlock()
	}))
	t.Cleanup(fa.srv.Close)
	return fa
}

func (fa *fakeAuthority) entry() []directory.AuthorityEntry {
	// A well-formed entry (a bridge keeps a directory cache, which checks
	// it); the fake answers no consensus.
	id, err := keys.NewIdentity(nil)
	if err != nil {
		panic(err)
	}
	return []directory.AuthorityEntry{directory.EntryFor("fake", strings.TrimPrefix(fa.srv.URL, "http://"), id, nil)}
}

// descriptor waits for the first upload.
func (fa *fakeAuthority) descriptor(t testing.TB) *directory.Descriptor {
	return fa.descriptorOf(t, keys.Fingerprint{})
}

// descriptorOf waits for an upload by fp (any relay when fp is zero).
func (fa *fakeAuthority) descriptorOf(t testing.TB, fp keys.Fingerprint) *directory.Descriptor {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		fa.mu.Lock()
		d := fa.last
		if !fp.IsZero() {
			d = fa.byFP[fp]
		}
		fa.mu.Unlock()
		if d != nil {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatal("no descriptor uploaded")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func probe(d *directory.Descriptor) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return relay.NewLinkProber(nil).Probe(ctx, d)
}

// TestLinkProber probes a live compute relay (a link handshake and a SETUP of
// its range), the same relay under a model id or range it does not serve,
// a dead port, and a relay claiming another's link key.
func TestLinkProber(t *testing.T) {
	fa := newFakeAuthority(t)
	cfg := testConfig(t, "s1", "compute")
	cfg.Authorities = fa.entry()
	cfg.Compute.Model, cfg.Compute.First, cfg.Compute.Last, cfg.Compute.Threads = modeltest.Path(t, "stories260K.gguf"), 0, 3, 1
	n := startRelay(t, cfg)
	d := fa.descriptor(t)
	if d.Fingerprint() != n.fp || d.Compute == nil || d.Compute.Layers != (directory.LayerRange{First: 0, Last: 3}) {
		t.Fatalf("descriptor: fingerprint %v compute %+v", d.Fingerprint(), d.Compute)
	}
	if err := probe(d); err != nil {
		t.Fatalf("live relay: %v", err)
	}

	// With the catalog's layer count the probe sends the SETUP the range
	// needs at once: an out-edge key for [0,3) of 5 layers. A catalog that
	// (wrongly) ends the model at layer 3 makes it send none, which the
	// relay refuses, and a known model is not retried the other way.
	p := relay.NewLinkProber(nil)
	p.Layers = func(model string) (int, bool) { return 5, model == d.Compute.Model }
	pctx, pcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer pcancel()
	if err := p.Probe(pctx, d); err != nil {
		t.Fatalf("live relay, catalog known: %v", err)
	}
	p.Layers = func(string) (int, bool) { return 3, true }
	if err := p.Probe(pctx, d); !errors.Is(err, &hop.Error{Code: hop.CodeBadMessage}) {
		t.Fatalf("catalog ending the model at the relay's last layer: %v", err)
	}

	wrongModel := *d
	wrongModel.Compute = &directory.ComputeInfo{Model: "other-model", Layers: d.Compute.Layers}
	err := probe(&wrongModel)
	if !errors.Is(err, relay.ErrProbe) || !errors.Is(err, &hop.Error{Code: hop.CodeWrongModel}) {
		t.Fatalf("wrong model: %v", err)
	}
	wrongRange := *d
	wrongRange.Compute = &directory.ComputeInfo{Model: d.Compute.Model, Layers: directory.LayerRange{First: 3, Last: 5}}
	if err := probe(&wrongRange); !errors.Is(err, &hop.Error{Code: hop.CodeRangeNotServed}) {
		t.Fatalf("wrong range: %v", err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	deadPort := *d
	deadPort.Transports = []directory.Transport{{Name: "tcp", Addr: dead}}
	if err := probe(&deadPort); !errors.Is(err, relay.ErrProbe) {
		t.Fatalf("dead port: %v", err)
	}

	other, err := keys.Open(t.TempDir(), keys.Options{})
	if err != nil {
		t.Fatal(err)
	}
	wrongKey := *d
	wrongKey.LinkKey = other.Link().Public
	if err := probe(&wrongKey); err == nil {
		t.Fatal("a probe expecting another link key succeeded")
	}
	noTCP := *d
	noTCP.Transports = []directory.Transport{{Name: "quic", Addr: d.Transports[0].Addr}}
	if err := probe(&noTCP); !errors.Is(err, relay.ErrProbe) {
		t.Fatalf("quic-only descriptor: %v", err)
	}
}

func measure(d *directory.Descriptor) (directory.Measurement, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return relay.NewLinkProber(nil).Measure(ctx, d)
}

// TestLinkProberMeasures: Measure times the measured exchange
// (spec/04-directory.md §6.3) through live relays, a guard and a compute
// relay, each on a link of its own: MeasureBytes of PADDING and a verified
// CREATED. A descriptor with an onion key the relay does not hold is not
// measured (the CREATED never verifies), although the relay is reachable;
// nor is a dead port.
func TestLinkProberMeasures(t *testing.T) {
	fa := newFakeAuthority(t)
	gcfg := testConfig(t, "g", "guard")
	ccfg := testConfig(t, "s1", "compute")
	ccfg.Compute.Model, ccfg.Compute.First, ccfg.Compute.Last, ccfg.Compute.Threads = modeltest.Path(t, "stories260K.gguf"), 0, 3, 1
	for _, c := range []*relay.Config{&gcfg, &ccfg} {
		c.Authorities = fa.entry()
	}
	g, c := startRelay(t, gcfg), startRelay(t, ccfg)
	dg, dc := fa.descriptorOf(t, g.fp), fa.descriptorOf(t, c.fp)
	for _, d := range []*directory.Descriptor{dg, dc} {
		m, err := measure(d)
		if err != nil {
			t.Fatalf("%s: %v", d.Nickname, err)
		}
		if m.Bytes != relay.MeasureBytes || m.Elapsed <= 0 || m.Weight() == 0 {
			t.Fatalf("%s: measurement %+v, want %d bytes in a positive time", d.Nickname, m, relay.MeasureBytes)
		}
		if m.Sent <= relay.MeasureBytes || m.Received <= 0 {
			t.Fatalf("%s: sent %d received %d bytes; the padding alone is %d", d.Nickname, m.Sent, m.Received, relay.MeasureBytes)
		}
		t.Logf("%s: weight %d KiB/s (%v), sent %d received %d bytes", d.Nickname, m.Weight(), m.Elapsed, m.Sent, m.Received)
	}

	other, err := keys.Open(t.TempDir(), keys.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cur, _ := other.OnionKeys()
	wrongOnion := *dg
	wrongOnion.Onion = directory.OnionPublic{X25519: cur.Public, XWing: dg.Onion.XWing}
	if err := probe(&wrongOnion); err != nil {
		t.Fatalf("the probe does not use the onion key, yet: %v", err)
	}
	if m, err := measure(&wrongOnion); !errors.Is(err, relay.ErrMeasure) || m.Weight() != 0 || m.Sent <= relay.MeasureBytes {
		t.Fatalf("onion key the relay does not hold: %+v %v, want not measured after sending the padding", m, err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := *dg
	dead.Transports = []directory.Transport{{Name: "tcp", Addr: ln.Addr().String()}}
	ln.Close()
	if m, err := measure(&dead); !errors.Is(err, relay.ErrMeasure) || m.Bytes != 0 {
		t.Fatalf("dead port: %+v %v", m, err)
	}
}

// TestAuthorityMeasuresRelays: an authority probing with relay.LinkProber
// measures a guard and a compute relay after probing them, and the
// consensus it publishes weights both by that measurement (method 2,
// spec/04-directory.md §7.4): a measured weight, bounded by the relays'
// claims of 16 sessions (16 × 1024 KiB/s), not the default for unmeasured
// relays.
func TestAuthorityMeasuresRelays(t *testing.T) {
	path := modeltest.Path(t, "stories260K.gguf")
	man, err := model.ComputeManifest(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	id := man.IDHex()
	auth := startAuthority(t, []directory.ModelConfig{{ID: id, Architecture: "llama", Layers: 5, TensorHashRoot: id,
		Shards: []directory.ShardConfig{{First: 0, Last: 3}, {First: 3, Last: 5}}}}, relay.NewLinkProber(nil))
	gcfg := testConfig(t, "guard", "guard")
	ccfg := testConfig(t, "s1", "compute")
	ccfg.Compute.Model, ccfg.Compute.First, ccfg.Compute.Last, ccfg.Compute.Threads = path, 0, 3, 1
	for _, c := range []*relay.Config{&gcfg, &ccfg} {
		c.Authorities = []directory.AuthorityEntry{auth.entry}
	}
	g, c := startRelay(t, gcfg), startRelay(t, ccfg)
	want := map[keys.Fingerprint][]directory.Flag{g.fp: {directory.FlagGuard, directory.FlagRunning},
		c.fp: {directory.FlagCompute, directory.FlagRunning}}
	// The period that first finds a relay Running also measures it; on a
	// loaded machine a measurement can overrun its phase (the probe timeout,
	// 1 s here), so look at consensuses until one has both measured, or a
	// minute passed.
	deadline := time.Now().Add(time.Minute)
	for {
		cons := waitConsensus(t, auth, want)
		if cons.Method != directory.ConsensusMethod {
			t.Fatalf("consensus method %d", cons.Method)
		}
		g, c := cons.Relay(g.fp), cons.Relay(c.fp)
		if !g.Unmeasured && !c.Unmeasured {
			for _, r := range []*directory.RouterStatus{g, c} {
				if r.Weight < 1 || r.Weight > r.Capacity.Sessions*1024 {
					t.Errorf("%s: weight %d, claims %d sessions", r.Nickname, r.Weight, r.Capacity.Sessions)
				}
				t.Logf("%s: consensus weight %d", r.Nickname, r.Weight)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no consensus with both relays measured: guard %+v, compute %+v", g, c)
		}
		time.Sleep(time.Second)
	}
}

// TestObfs4AndQUICListeners: a bridge relay with an obfs4 listener prints
// its bridge line, publishes the transport, and accepts links on it; a
// one-hop circuit over the obfs4 link proves the link reached the circuit
// switch, and the prober reaches it through obfs4. A (non-bridge) relay with
// only a QUIC listener accepts links on it.
func TestObfs4AndQUICListeners(t *testing.T) {
	fa := newFakeAuthority(t)
	cfg := testConfig(t, "bridge", "bridge", "guard")
	cfg.OR.TCP, cfg.OR.Obfs4 = "", "127.0.0.1:0"
	cfg.Authorities = fa.entry()
	n := startRelay(t, cfg)
	line := n.line("obfs4 ")
	if line == "" {
		t.Fatalf("no bridge line in %q", n.stdout.String())
	}
	br, err := transports.ParseBridgeLine(line)
	if err != nil {
		t.Fatalf("bridge line %q: %v", line, err)
	}
	if br.Addr != n.addr("or-obfs4") || br.Fingerprint != n.fp {
		t.Fatalf("bridge line %q does not match listener %s and fingerprint %s", line, n.addr("or-obfs4"), n.fp)
	}
	// A bridge does not upload its descriptor; it hands it to clients in
	// the link handshake.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lc := dialLink(ctx, t, "obfs4", br.Addr, br.Args, n.fp)
	d, err := directory.ParseDescriptor(lc.PeerDescriptor(), time.Now())
	if err != nil || d.Fingerprint() != n.fp {
		t.Fatalf("bridge descriptor from the handshake: %v", err)
	}
	var names []string
	for _, tr := range d.Transports {
		names = append(names, tr.Name)
	}
	if strings.Join(names, ",") != "obfs4" {
		t.Fatalf("descriptor transports %v", names)
	}

	circ, err := origin.Build(ctx, lc, []origin.HopInfo{{IdentityKey: d.Identity, OnionKey: d.Onion.X25519}}, origin.Options{})
	if err != nil {
		t.Fatalf("one-hop circuit over obfs4: %v", err)
	}
	circ.Destroy()
	if err := probe(d); err != nil {
		t.Fatalf("probe over obfs4: %v", err)
	}

	qcfg := testConfig(t, "quic", "guard")
	qcfg.OR.TCP, qcfg.OR.QUIC = "", "127.0.0.1:0"
	q := startRelay(t, qcfg)
	dialLink(ctx, t, "quic", q.addr("or-quic"), nil, q.fp).Close()
	fa.mu.Lock()
	defer fa.mu.Unlock()
	if fa.last != nil {
		t.Fatal("the bridge uploaded its descriptor")
	}
}

// dialLink opens a client link over transport name.
func dialLink(ctx context.Context, t *testing.T, name, addr string, args transports.Args, fp keys.Fingerprint) *link.Conn {
	t.Helper()
	tr, _ := transports.Get(name)
	cf, err := tr.ClientFactory(ctx, transports.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer cf.Close()
	dl, err := cf.ParseArgs(args)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := dl.DialContext(ctx, addr)
	if err != nil {
		t.Fatalf("%s dial: %v", name, err)
	}
	lc, err := link.Dial(ctx, conn, link.DialConfig{ExpectFingerprint: fp})
	if err != nil {
		t.Fatalf("%s link: %v", name, err)
	}
	return lc
}

// TestConfigRejected: configurations that cannot work fail Run at once,
// before anything listens.
func TestConfigRejected(t *testing.T) {
	cases := map[string]func(*relay.Config){
		"unknown role":     func(c *relay.Config) { c.Roles = []string{"exit"} },
		"no roles":         func(c *relay.Config) { c.Roles = nil },
		"no listener":      func(c *relay.Config) { c.OR.TCP = "" },
		"iat mode":         func(c *relay.Config) { c.OR.Obfs4IATMode = 3 },
		"compute no model": func(c *relay.Config) { c.Roles = []string{"compute"}; c.Compute.Last = 1 },
		"empty range": func(c *relay.Config) {
			c.Roles, c.Compute.Model, c.Compute.First, c.Compute.Last = []string{"compute"}, "m.gguf", 2, 2
		},
		"mpc no model":    func(c *relay.Config) { c.Roles = []string{"mpc"}; c.Compute.Last = 1 },
		"dealer no model": func(c *relay.Config) { c.Roles = []string{"dealer"} },
		"mpc empty range": func(c *relay.Config) {
			c.Roles, c.Compute.Model, c.Compute.First, c.Compute.Last = []string{"mpc"}, "m.gguf", 3, 3
		},
		"mpc range beyond the model": func(c *relay.Config) {
			c.Roles, c.Compute.Model, c.Compute.First, c.Compute.Last = []string{"mpc"}, modeltest.Path(t, "stories260K.gguf"), 2, 6
		},
		"dealer missing model file": func(c *relay.Config) {
			c.Roles, c.Compute.Model = []string{"dealer"}, "/nonexistent/model.gguf"
		},
		"negative sessions": func(c *relay.Config) {
			c.Roles, c.Compute.Model, c.Compute.MaxSessions = []string{"dealer"}, "m.gguf", -1
		},
		"compute and mpc":           func(c *relay.Config) { c.Roles = []string{"compute", "mpc"} },
		"bad family":                func(c *relay.Config) { c.Family = []string{"xyz"} },
		"cache without authorities": func(c *relay.Config) { c.Dir.Listen = "127.0.0.1:0" },
		"missing model file": func(c *relay.Config) {
			c.Roles, c.Compute.Model, c.Compute.Last = []string{"compute"}, "/nonexistent/model.gguf", 1
		},
		"range beyond the model": func(c *relay.Config) {
			c.Roles, c.Compute.Model, c.Compute.Last = []string{"compute"}, modeltest.Path(t, "stories260K.gguf"), 6
		},
		"onion without tor": func(c *relay.Config) { c.OR.Onion = ":9001" },
		"onion through a socks port": func(c *relay.Config) {
			c.OR.Onion, c.Tor.Enabled, c.Tor.SOCKS = ":9001", true, "127.0.0.1:9050"
		},
		"tor missing": func(c *relay.Config) { c.Tor.Enabled, c.Tor.TorPath = true, "/nonexistent/tor" },
		"verifier no model": func(c *relay.Config) {
			c.Roles, c.Authorities = []string{"verifier"}, []directory.AuthorityEntry{{Name: "a", Address: "127.0.0.1:1"}}
		},
		"verifier without authorities": func(c *relay.Config) {
			c.Roles, c.Compute.Model = []string{"verifier"}, modeltest.Path(t, "stories260K.gguf")
		},
		"verifier and compute": func(c *relay.Config) {
			c.Roles, c.Compute.Model, c.Compute.Last = []string{"verifier", "compute"}, modeltest.Path(t, "stories260K.gguf"), 5
		},
		"verifier limits": func(c *relay.Config) {
			c.Roles, c.Compute.Model, c.Verifier.MaxTicketMiB = []string{"verifier"}, modeltest.Path(t, "stories260K.gguf"), 65
		},
	}
	for name, mod := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(t, "bad", "guard")
			mod(&cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			out := &syncBuffer{}
			err := relay.Run(ctx, cfg, daemonEnv(out))
			if err == nil {
				t.Fatal("Run accepted the configuration")
			}
			if strings.Contains(out.String(), "listening") {
				t.Fatalf("Run listened before rejecting: %q", out.String())
			}
		})
	}
}

// TestMPCConfigRejected: out-of-range party settings are refused by name,
// before the model is even looked at.
func TestMPCConfigRejected(t *testing.T) {
	for _, c := range []struct {
		field string
		mod   func(*relay.Config)
	}{
		{"mpc.precompute_mib", func(c *relay.Config) { c.MPC.PrecomputeMiB = -2 }},
		{"mpc.precompute_mib", func(c *relay.Config) { c.MPC.PrecomputeMiB = 1 << 20 }},
		{"mpc.max_pending_mib", func(c *relay.Config) { c.MPC.MaxPendingMiB = -1 }},
		{"mpc.max_pending_mib", func(c *relay.Config) { c.MPC.MaxPendingMiB = 1 << 20 }},
	} {
		cfg := testConfig(t, "bad", "guard")
		cfg.Roles, cfg.Compute.Model, cfg.Compute.Last = []string{"mpc"}, "/nonexistent/m.gguf", 1
		c.mod(&cfg)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := relay.Run(ctx, cfg, daemonEnv(&syncBuffer{}))
		cancel()
		if err == nil || !strings.Contains(err.Error(), c.field) {
			t.Fatalf("%s out of range: %v", c.field, err)
		}
	}
}

// TestMPCRelayStarts: a party relay loads its stage of a llama2.c model
// through compute/model's exports and a dealer relay only the model's shape;
// both start and publish what they serve under the manifest's model id.
func TestMPCRelayStarts(t *testing.T) {
	path := modeltest.Path(t, "stories260K.bin")
	fa := newFakeAuthority(t)
	p := testConfig(t, "party", "mpc")
	p.Compute.Model, p.Compute.First, p.Compute.Last = path, 1, 4
	p.Compute.Tokenizer = modeltest.Path(t, "tok512.bin")
	d := testConfig(t, "dealer", "dealer")
	d.Compute.Model = path
	for _, c := range []*relay.Config{&p, &d} {
		c.Authorities = fa.entry()
	}
	pn, dn := startRelay(t, p), startRelay(t, d)
	man, err := model.ComputeManifest(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	pd, dd := fa.descriptorOf(t, pn.fp), fa.descriptorOf(t, dn.fp)
	if pd.MPC == nil || pd.MPC.Model != man.IDHex() || pd.MPC.Layers != (directory.LayerRange{First: 1, Last: 4}) ||
		pd.Compute != nil || pd.Dealer != nil || !pd.HasRole(directory.RoleMPC) {
		t.Fatalf("party descriptor: mpc %+v compute %+v dealer %+v", pd.MPC, pd.Compute, pd.Dealer)
	}
	if dd.Dealer == nil || dd.Dealer.Model != man.IDHex() || dd.MPC != nil || dd.Compute != nil || !dd.HasRole(directory.RoleDealer) {
		t.Fatalf("dealer descriptor: dealer %+v mpc %+v compute %+v", dd.Dealer, dd.MPC, dd.Compute)
	}
	for _, c := range []relay.Config{p, d} {
		if _, err := os.Stat(filepath.Join(c.DataDir, relay.CaptureFile)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s: a capture file without audit_capture: %v", c.Nickname, err)
		}
	}
}

// BenchmarkLinkProberMeasure: what an authority spends on one relay per
// period when it measures it (spec/04-directory.md §6.3): Probe then
// Measure, against an in-process guard and compute relay (whose probe adds
// a SETUP), over loopback TCP. Reported: wall time per relay, bytes the
// authority sent and received (transport level, both links' handshakes
// included), and the CPU time of the whole process (authority and relay
// together: an upper bound on the authority's share).
func BenchmarkLinkProberMeasure(b *testing.B) {
	fa := newFakeAuthority(b)
	gcfg := testConfig(b, "g", "guard")
	ccfg := testConfig(b, "s1", "compute")
	ccfg.Compute.Model, ccfg.Compute.First, ccfg.Compute.Last, ccfg.Compute.Threads = modeltest.Path(b, "stories260K.gguf"), 0, 3, 1
	for _, c := range []*relay.Config{&gcfg, &ccfg} {
		c.Authorities = fa.entry()
	}
	g, c := startRelay(b, gcfg), startRelay(b, ccfg)
	for _, r := range []struct {
		name string
		fp   keys.Fingerprint
	}{{"guard", g.fp}, {"compute", c.fp}} {
		d := fa.descriptorOf(b, r.fp)
		b.Run(r.name, func(b *testing.B) {
			p := relay.NewLinkProber(nil)
			var sent, recv int64
			var weight float64
			var cpu time.Duration
			// A relay admits 10 link handshakes per second from one address
			// (spec/01-link.md §6); a probe and a measurement make two. The
			// pause between relays is not timed.
			pause := 250 * time.Millisecond
			b.ResetTimer()
			for range b.N {
				cpu0 := cpuTime()
				ps, pr, err := relay.ProbeCounted(context.Background(), p, d)
				if err != nil {
					b.Fatal(err)
				}
				m, err := p.Measure(context.Background(), d)
				cpu += cpuTime() - cpu0
				if err != nil || m.Bytes != relay.MeasureBytes {
					b.Fatalf("%+v %v", m, err)
				}
				sent, recv, weight = sent+ps+m.Sent, recv+pr+m.Received, weight+float64(m.Weight())
				b.StopTimer()
				time.Sleep(pause)
				b.StartTimer()
			}
			n := float64(b.N)
			b.ReportMetric(float64(sent)/n, "sent-B/op")
			b.ReportMetric(float64(recv)/n, "recv-B/op")
			b.ReportMetric(weight/n, "KiB/s-weight")
			b.ReportMetric(float64(cpu.Microseconds())/n, "cpu-µs/op")
		})
	}
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestProbeRoundTimeout: each probe round gets four of the link's measured
// round trips, never less than the floor left for a relay's own work.
func TestProbeRoundTimeout(t *testing.T) {
	for _, c := range []struct{ rtt, want time.Duration }{
		{0, 2 * time.Second},
		{100 * time.Millisecond, 2 * time.Second},
		{time.Second, 4 * time.Second},
		{3 * time.Second, 12 * time.Second},
	} {
		if got := relay.RoundTimeout(c.rtt); got != c.want {
			t.Errorf("handshake of %v: rounds of %v, want %v", c.rtt, got, c.want)
		}
	}
}

// TestOnionProbePatience: the authority lets a probe through Tor of an
// onion-only relay outlast its probing phase (directory.PatientProber), and
// no other probe: one over tcp, or of a relay with a tcp transport besides
// its onion one, or by a prober without a Tor (which cannot reach it).
func TestOnionProbePatience(t *testing.T) {
	onionOnly := &directory.Descriptor{Transports: []directory.Transport{{Name: onion.Name, Addr: "abc.onion:9001"}}}
	both := &directory.Descriptor{Transports: []directory.Transport{{Name: onion.Name, Addr: "abc.onion:9001"}, {Name: "tcp", Addr: "127.0.0.1:9001"}}}
	withTor := &relay.LinkProber{Tor: &onion.Tor{}}
	for _, c := range []struct {
		name string
		p    *relay.LinkProber
		d    *directory.Descriptor
		want time.Duration
	}{
		{"onion only, through Tor", withTor, onionOnly, relay.OnionProbePatience},
		{"onion and tcp", withTor, both, 0},
		{"onion only, no Tor", &relay.LinkProber{}, onionOnly, 0},
	} {
		if got := c.p.Patience(c.d); got != c.want {
			t.Errorf("%s: patience %v, want %v", c.name, got, c.want)
		}
	}
}
