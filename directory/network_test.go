package directory_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/directory/dirtest"
	"github.com/unfed/unfed/relay/keys"
)

// In-process networks of authorities over real HTTP on 127.0.0.1, with a
// 2-second voting interval (vote and signature phases of 1 s each).

const testInterval = 2 * time.Second

type authNode struct {
	name   string
	cfg    directory.AuthorityConfig
	addr   string
	prober *dirtest.Prober
	auth   *directory.Authority
	cancel context.CancelFunc
	done   chan error
}

type testNet struct {
	t        *testing.T
	interval time.Duration
	nodes    []*authNode
	trust    directory.AuthoritySet
}

// logWriter sends log lines to t.Log until the test stops the node.
type logWriter struct {
	mu  sync.Mutex
	t   *testing.T
	off bool
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.off {
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

func testParams() map[string]int64 {
	return map[string]int64{
		directory.ParamStableUptime: 0, directory.ParamGuardUptime: 0, directory.ParamGuardMinTPS: 50,
		directory.ParamDescriptorMaxAge: 3600, directory.ParamValidPeriods: 2,
	}
}

func startNet(t *testing.T, n int, params map[string]int64) *testNet {
	t.Helper()
	return startNetPQ(t, n, params, false)
}

// startNetPQ starts n authorities; with pq each has an ML-DSA-65 key.
func startNetPQ(t *testing.T, n int, params map[string]int64, pq bool) *testNet {
	t.Helper()
	return startNetCfg(t, n, params, pq, nil)
}

// startNetCfg is startNetPQ with a change to every authority's config.
func startNetCfg(t *testing.T, n int, params map[string]int64, pq bool, tweak func(*directory.AuthorityConfig)) *testNet {
	t.Helper()
	tn := &testNet{t: t, interval: testInterval}
	var entries []directory.AuthorityEntry
	var dirs []string
	var lns []net.Listener
	for i := range n {
		dir := t.TempDir()
		ks, err := keys.Open(dir, keys.Options{})
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("auth%d", i)
		var pub *mldsa65.PublicKey
		if pq {
			sk, err := directory.LoadOrCreateMLDSAKey(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			pub = sk.Public().(*mldsa65.PublicKey)
		}
		entries = append(entries, directory.EntryFor(name, ln.Addr().String(), ks.Identity(), pub))
		dirs, lns = append(dirs, dir), append(lns, ln)
		tn.nodes = append(tn.nodes, &authNode{name: name, addr: ln.Addr().String(), prober: &dirtest.Prober{}})
	}
	var err error
	if tn.trust, err = directory.NewAuthoritySet(entries, false); err != nil {
		t.Fatal(err)
	}
	lw := &logWriter{t: t}
	logger := slog.New(slog.NewTextHandler(lw, &slog.HandlerOptions{Level: slog.LevelWarn}))
	for i, node := range tn.nodes {
		cfg := directory.AuthorityConfig{
			DataDir: dirs[i], Authorities: entries, Interval: testInterval, VoteDelay: time.Second, DistDelay: time.Second,
			Params: params, Prober: node.prober, MaxRelaysPerAddr: -1, UploadRate: 1000, UploadBurst: 1000,
			Models: []directory.ModelConfig{{ID: testModel.ID, Architecture: "llama", Layers: 5, TensorHashRoot: testModel.TensorHashRoot,
				Shards: []directory.ShardConfig{{First: 0, Last: 2}, {First: 2, Last: 5}}}},
		}
		// The three ways an authority signs (spec §8.4), side by side:
		// auth0 certifies and rotates its own signing key, auth1 signs
		// with a key certified "offline" and never loads its identity,
		// the others sign with their identity keys.
		switch i {
		case 0:
			cfg.SigningKeyLifetime = 24 * time.Hour
		case 1:
			if _, err := directory.CertifyAuthority(dirs[i], dirs[i], 30*24*time.Hour, time.Now()); err != nil {
				t.Fatal(err)
			}
			cfg.OfflineIdentity = true
		}
		if tweak != nil {
			tweak(&cfg)
		}
		tn.interval = cfg.Interval
		node.cfg = cfg
		a, err := directory.NewAuthority(cfg, logger.With("authority", node.name), nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		node.auth, node.cancel, node.done = a, cancel, make(chan error, 1)
		go func() { node.done <- a.Serve(ctx, lns[i]) }()
	}
	t.Cleanup(func() {
		for i := range tn.nodes {
			tn.stop(i)
		}
		lw.mu.Lock()
		lw.off = true
		lw.mu.Unlock()
	})
	return tn
}

// stop shuts authority i down and waits for it.
func (tn *testNet) stop(i int) {
	n := tn.nodes[i]
	if n.cancel == nil {
		return
	}
	n.cancel()
	select {
	case err := <-n.done:
		if err != nil {
			tn.t.Errorf("%s: Serve: %v", n.name, err)
		}
	case <-time.After(10 * time.Second):
		tn.t.Errorf("%s did not stop", n.name)
	}
	n.cancel = nil
}

// upload posts a descriptor to every running authority.
func (tn *testNet) upload(doc []byte) {
	tn.t.Helper()
	for _, n := range tn.nodes {
		if n.cancel == nil {
			continue
		}
		resp, err := http.Post("http://"+n.addr+directory.PathDescriptor, "text/plain", bytes.NewReader(doc))
		if err != nil {
			tn.t.Fatal(err)
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			tn.t.Fatalf("upload to %s: %d %s", n.name, resp.StatusCode, msg)
		}
	}
}

// waitConsensus waits until every listed node has published a consensus
// newer than after, and returns them.
func (tn *testNet) waitConsensus(after time.Time, nodes ...int) []*directory.Consensus {
	tn.t.Helper()
	deadline := time.Now().Add(4 * tn.interval)
	for time.Now().Before(deadline) {
		var out []*directory.Consensus
		for _, i := range nodes {
			if c := tn.nodes[i].auth.Current(); c != nil && c.ValidAfter.After(after) {
				out = append(out, c)
			}
		}
		if len(out) == len(nodes) {
			// Late signatures may still be arriving; let the period settle.
			time.Sleep(100 * time.Millisecond)
			out = out[:0]
			for _, i := range nodes {
				out = append(out, tn.nodes[i].auth.Current())
			}
			return out
		}
		time.Sleep(50 * time.Millisecond)
	}
	tn.t.Fatalf("no consensus after %s from nodes %v within %s", after.Format(time.TimeOnly), nodes, 4*tn.interval)
	return nil
}

func signedNow(t *testing.T, r *dirtest.Relay) []byte {
	t.Helper()
	b, err := r.Sign(time.Now().UTC().Truncate(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func flagsOf(c *directory.Consensus, fp keys.Fingerprint) []directory.Flag {
	r := c.Relay(fp)
	if r == nil {
		return nil
	}
	return r.Flags
}

func TestConsensusThreeAuthorities(t *testing.T) {
	t.Parallel()
	tn := startNet(t, 3, testParams())
	mk := func(seed string, roles ...directory.Role) *dirtest.Relay {
		r, err := dirtest.NewRelay(nil, "127.0.0.1:1", time.Now(), roles...)
		if err != nil {
			t.Fatal(err)
		}
		r.Desc.Nickname = seed
		return r
	}
	guard := mk("guard", directory.RoleGuard)
	slow := mk("slowguard", directory.RoleGuard)
	slow.Desc.Capacity.TokensPerSec = 10 // below guard-min-tps
	comp := mk("compute", directory.RoleCompute)
	comp.Desc.Compute = &directory.ComputeInfo{Model: testModel.ID, Layers: directory.LayerRange{First: 2, Last: 5}}
	odd := mk("oddshard", directory.RoleCompute)
	odd.Desc.Compute = &directory.ComputeInfo{Model: testModel.ID, Layers: directory.LayerRange{First: 1, Last: 5}}
	// Parties serve stage ranges of their own choosing within the model.
	ma, mb := mk("mpca", directory.RoleMPC), mk("mpcb", directory.RoleMPC)
	ma.Desc.MPC = &directory.MPCInfo{Model: testModel.ID, Layers: directory.LayerRange{First: 0, Last: 3}}
	mb.Desc.MPC = &directory.MPCInfo{Model: testModel.ID, Layers: directory.LayerRange{First: 3, Last: 5}}
	mpast := mk("mpcpast", directory.RoleMPC)
	mpast.Desc.MPC = &directory.MPCInfo{Model: testModel.ID, Layers: directory.LayerRange{First: 3, Last: 6}}
	dl, dlOther := mk("dealer", directory.RoleDealer), mk("dealerother", directory.RoleDealer)
	dl.Desc.Dealer = &directory.DealerInfo{Model: testModel.ID}
	dlOther.Desc.Dealer = &directory.DealerInfo{Model: "not-in-catalog"}
	down := mk("down", directory.RoleGuard)
	relays := []*dirtest.Relay{guard, slow, comp, odd, ma, mb, mpast, dl, dlOther, down}
	for _, n := range tn.nodes {
		n.prober.SetDown(down.Fingerprint(), true)
	}
	for _, r := range relays {
		tn.upload(signedNow(t, r))
	}
	// The first consensus may have been voted before the uploads were
	// probed (seen under load: one relay of nine listed); one valid an
	// interval after the uploads was voted on probes made after them.
	cs := tn.waitConsensus(time.Now().Add(tn.interval), 0, 1, 2)
	for i, c := range cs[1:] {
		if !bytes.Equal(c.Raw(), cs[0].Raw()) {
			t.Fatalf("consensus at auth%d differs from auth0:\n%s\n---\n%s", i+1, c.Raw(), cs[0].Raw())
		}
	}
	c := verifyWith(t, tn.trust, cs[0].Raw())
	signers := map[keys.Fingerprint]bool{}
	for _, s := range c.Signatures {
		signers[s.Authority] = true
	}
	if len(signers) != 3 {
		t.Errorf("signed by %d authorities, want 3", len(signers))
	}
	R, V, S, G, C, M, D := directory.FlagRunning, directory.FlagValid, directory.FlagStable, directory.FlagGuard, directory.FlagCompute,
		directory.FlagMPC, directory.FlagDealer
	want := map[*dirtest.Relay][]directory.Flag{
		guard:   {G, R, S, V},
		slow:    {R, S, V},
		comp:    {C, R, S, V},
		odd:     {R, S, V},
		ma:      {M, R, S, V},
		mb:      {M, R, S, V},
		mpast:   {R, S, V},
		dl:      {D, R, S, V},
		dlOther: {R, S, V},
		down:    nil, // votes list only relays their authority reached (spec §4)
	}
	for r, flags := range want {
		if got := flagsOf(c, r.Fingerprint()); !slices.Equal(got, flags) {
			t.Errorf("%s: flags %v, want %v", r.Desc.Nickname, got, flags)
		}
	}
	if len(c.Relays) != len(relays)-1 {
		t.Errorf("%d relays listed, want %d (all but the unreachable one)", len(c.Relays), len(relays)-1)
	}
	if m := c.Model(testModel.ID); m == nil || m.Layers != 5 || m.TensorHashRoot != testModel.TensorHashRoot || len(m.Shards) != 2 {
		t.Errorf("model catalog: %+v", c.Models)
	}
	if e := c.Relay(mb.Fingerprint()); e == nil || e.MPC == nil || *e.MPC != *mb.Desc.MPC {
		t.Errorf("party entry %+v, want its mpc line %+v", e, mb.Desc.MPC)
	}
	if e := c.Relay(dl.Fingerprint()); e == nil || e.Dealer == nil || *e.Dealer != *dl.Desc.Dealer {
		t.Errorf("dealer entry %+v, want its dealer line %+v", e, dl.Desc.Dealer)
	}
	if c.Param(directory.ParamGuardMinTPS, 0) != 50 {
		t.Errorf("params %v", c.Params)
	}

	// The same bytes over HTTP; descriptors by fingerprint.
	for _, n := range tn.nodes {
		b := httpGetOK(t, "http://"+n.addr+directory.PathConsensus)
		if !bytes.Equal(b, cs[0].Raw()) {
			t.Errorf("%s serves different consensus bytes", n.name)
		}
	}
	d := httpGetOK(t, "http://"+tn.nodes[1].addr+directory.PathDescriptorByFP+comp.Fingerprint().String())
	if pd, err := directory.ParseDescriptor(d, time.Now()); err != nil || pd.Fingerprint() != comp.Fingerprint() {
		t.Errorf("descriptor by fingerprint: %v", err)
	}

	// `unfed consensus show URL` verifies against a trust file.
	trustFile := filepath.Join(t.TempDir(), "authorities.txt")
	if err := os.WriteFile(trustFile, authorityFile(tn.trust), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := directory.ConsensusShow(context.Background(), []string{"--authorities", trustFile, "http://" + tn.nodes[1].addr}, &out, &out); err != nil ||
		!strings.Contains(out.String(), "verified") || !strings.Contains(out.String(), comp.Fingerprint().String()) {
		t.Errorf("consensus show URL: %v\n%s", err, out.String())
	}

	// A relay's cache fetches from the authorities and serves clients.
	cacheFetcher := &directory.Fetcher{Sources: []string{tn.nodes[0].addr, tn.nodes[2].addr}, Trust: tn.trust}
	if _, err := cacheFetcher.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer((&directory.Cache{Fetcher: cacheFetcher}).Handler())
	defer srv.Close()
	client := &directory.Fetcher{Sources: []string{srv.URL}, Trust: tn.trust, Store: &directory.Store{Dir: t.TempDir()}}
	installed := client.Installed()
	got, err := client.Fetch(context.Background())
	if err != nil || !bytes.Equal(got.Raw(), cs[0].Raw()) {
		t.Errorf("client through cache: %v", err)
	}
	// Installed tells of a newer consensus, and only of one.
	select {
	case <-installed:
	default:
		t.Error("Installed not closed when the first consensus was installed")
	}
	again := client.Installed()
	if _, err := client.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-again:
		t.Error("Installed closed by the same consensus fetched again")
	default:
	}
}

func verifyWith(t *testing.T, trust directory.AuthoritySet, b []byte) *directory.Consensus {
	t.Helper()
	u, err := directory.ParseConsensus(b)
	if err != nil {
		t.Fatal(err)
	}
	c, err := u.Verify(trust, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func httpGetOK(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return b
}

func TestConsensusOneAuthorityDown(t *testing.T) {
	t.Parallel()
	tn := startNet(t, 3, testParams())
	r, err := dirtest.NewRelay(nil, "127.0.0.1:1", time.Now(), directory.RoleGuard)
	if err != nil {
		t.Fatal(err)
	}
	tn.upload(signedNow(t, r))
	first := tn.waitConsensus(time.Time{}, 0, 1, 2)[0]

	tn.stop(2)
	second := tn.waitConsensus(first.ValidAfter, 0, 1)
	if !bytes.Equal(second[0].Raw(), second[1].Raw()) {
		t.Fatal("the two remaining authorities publish different documents")
	}
	c := verifyWith(t, tn.trust, second[0].Raw())
	if len(c.Signatures) != 2 || len(c.Authorities) != 2 || c.Relay(r.Fingerprint()) == nil {
		t.Fatalf("with one authority down: %d signatures, %d voters, relay listed %v", len(c.Signatures), len(c.Authorities), c.Relay(r.Fingerprint()) != nil)
	}

	store := &directory.Store{Dir: t.TempDir()}
	client := &directory.Fetcher{Sources: []string{tn.nodes[0].addr}, Trust: tn.trust, Store: store}
	if _, err := client.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}

	tn.stop(1)
	// One authority alone cannot publish: wait out two periods.
	time.Sleep(2 * testInterval)
	if cur := tn.nodes[0].auth.Current(); !cur.ValidAfter.Equal(c.ValidAfter) {
		t.Fatalf("a lone authority published a consensus for %s", cur.ValidAfter)
	}
	if time.Now().Before(c.ValidUntil) {
		if got, err := client.Current(); err != nil || got.ValidAfter != c.ValidAfter {
			t.Fatalf("client dropped the last valid consensus before valid-until: %v", err)
		}
		// A restarted client finds it on disk.
		restarted := &directory.Fetcher{Trust: tn.trust, Store: store}
		if err := restarted.Bootstrap(); err != nil {
			t.Fatal(err)
		}
		if got, err := restarted.Current(); err != nil || got.ValidAfter != c.ValidAfter {
			t.Fatalf("restarted client: %v", err)
		}
	}
	time.Sleep(time.Until(c.ValidUntil) + 50*time.Millisecond)
	_, err = client.Current()
	if !errors.Is(err, directory.ErrExpired) || !strings.Contains(err.Error(), "ran out") {
		t.Fatalf("after valid-until: got %v, want a clear ErrExpired", err)
	}
	if _, err := client.Fetch(context.Background()); err == nil {
		t.Error("fetch of an expired consensus succeeded")
	}
	resp, err := http.Get("http://" + tn.nodes[0].addr + directory.PathConsensus)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("authority serves an expired consensus: HTTP %d", resp.StatusCode)
	}
}

// TestRunningAndFlagMajority: authorities that disagree on reachability are
// resolved by the majority, and a relay that stops answering loses Running
// in the next consensus.
func TestRunningAndFlagMajority(t *testing.T) {
	t.Parallel()
	tn := startNet(t, 3, testParams())
	mk := func() *dirtest.Relay {
		r, err := dirtest.NewRelay(nil, "127.0.0.1:1", time.Now(), directory.RoleGuard)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	oneSaysDown, twoSayDown, later := mk(), mk(), mk()
	tn.nodes[0].prober.SetDown(oneSaysDown.Fingerprint(), true)
	tn.nodes[0].prober.SetDown(twoSayDown.Fingerprint(), true)
	tn.nodes[1].prober.SetDown(twoSayDown.Fingerprint(), true)
	for _, r := range []*dirtest.Relay{oneSaysDown, twoSayDown, later} {
		tn.upload(signedNow(t, r))
	}
	// Voted on probes made after the uploads (TestConsensusThreeAuthorities).
	c := tn.waitConsensus(time.Now().Add(tn.interval), 0, 1, 2)[0]
	if !slices.Contains(flagsOf(c, oneSaysDown.Fingerprint()), directory.FlagRunning) {
		t.Errorf("relay down for 1 of 3 authorities lacks Running: %v", flagsOf(c, oneSaysDown.Fingerprint()))
	}
	if slices.Contains(flagsOf(c, twoSayDown.Fingerprint()), directory.FlagRunning) {
		t.Errorf("relay down for 2 of 3 authorities has Running")
	}
	if !slices.Contains(flagsOf(c, later.Fingerprint()), directory.FlagRunning) {
		t.Fatalf("reachable relay lacks Running")
	}
	for _, n := range tn.nodes {
		n.prober.SetDown(later.Fingerprint(), true)
	}
	// The next consensus may already have been voted; the one after an
	// interval from now was voted on probes made after SetDown.
	next := tn.waitConsensus(time.Now().Add(tn.interval), 0, 1, 2)[0]
	if e := next.Relay(later.Fingerprint()); e != nil {
		t.Errorf("relay that stopped answering: listed with flags %v, want left out (spec §4)", e.Flags)
	}
}

// TestPublisherUploadsAndRejections: the relay-side Publisher reaches every
// authority; forged and stale uploads get a 400 with the reason.
func TestPublisherUploadsAndRejections(t *testing.T) {
	t.Parallel()
	tn := startNet(t, 2, testParams())
	r, err := dirtest.NewRelay(nil, "127.0.0.1:1", time.Now(), directory.RoleGuard)
	if err != nil {
		t.Fatal(err)
	}
	p := &directory.Publisher{Authorities: []string{tn.nodes[0].addr, "http://" + tn.nodes[1].addr}, Interval: time.Minute,
		Sign: func(now time.Time) ([]byte, error) { return r.Sign(now.UTC().Truncate(time.Second)) }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && !(tn.nodes[0].auth.Descriptor(r.Fingerprint()) != nil && tn.nodes[1].auth.Descriptor(r.Fingerprint()) != nil) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	for _, n := range tn.nodes {
		if n.auth.Descriptor(r.Fingerprint()) == nil {
			t.Fatalf("%s never got the descriptor", n.name)
		}
	}
	if up := p.Uploaded(); len(up) != 2 || !up[tn.nodes[0].addr] {
		t.Errorf("Uploaded() = %v", up)
	}

	post := func(b []byte) (int, string) {
		resp, err := http.Post("http://"+tn.nodes[0].addr+directory.PathDescriptor, "text/plain", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		msg, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(msg)
	}
	good := signedNow(t, r)
	forged := bytes.Replace(good, []byte("price-per-token 5"), []byte("price-per-token 0"), 1)
	if code, msg := post(forged); code != http.StatusBadRequest || !strings.Contains(msg, "signature does not verify") {
		t.Errorf("forged: %d %q", code, msg)
	}
	stale, err := r.Sign(time.Now().Add(-2 * time.Hour).UTC().Truncate(time.Second)) // older than descriptor-max-age 3600
	if err != nil {
		t.Fatal(err)
	}
	if code, msg := post(stale); code != http.StatusBadRequest || !strings.Contains(msg, "stale") {
		t.Errorf("stale: %d %q", code, msg)
	}
	if code, msg := post(bytes.Repeat([]byte("a"), directory.MaxDescriptorSize+1)); code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized: %d %q", code, msg)
	}
	if code, _ := post(good); code != http.StatusOK {
		t.Errorf("good re-upload: %d", code)
	}
	resp, err := http.Get("http://" + tn.nodes[0].addr + directory.PathDescriptorByFP + "00")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bad fingerprint: HTTP %d", resp.StatusCode)
	}
}

// TestConsensusPQAndRestart: with pq-signatures=1 every authority adds an
// ML-DSA-65 signature from a 0600 key in its data directory; a restarted
// authority serves its stored consensus.
func TestConsensusPQAndRestart(t *testing.T) {
	t.Parallel()
	params := testParams()
	params[directory.ParamPQSignatures] = 1
	tn := startNetPQ(t, 3, params, true)
	r, err := dirtest.NewRelay(nil, "127.0.0.1:1", time.Now(), directory.RoleGuard)
	if err != nil {
		t.Fatal(err)
	}
	tn.upload(signedNow(t, r))
	cs := tn.waitConsensus(time.Time{}, 0, 1, 2)
	c := verifyWith(t, tn.trust, cs[0].Raw())
	algs := map[string]int{}
	for _, s := range c.Signatures {
		algs[s.Alg]++
	}
	if algs[directory.SigEd25519] != 1 || algs[directory.SigEd25519Cert] != 2 || algs[directory.SigMLDSA65] != 3 {
		t.Errorf("signatures by algorithm: %v, want one by an identity key, two by certified signing keys, 3 ML-DSA-65", algs)
	}
	keyFile := filepath.Join(tn.nodes[0].cfg.DataDir, "keys", "authority_mldsa65.key")
	st, err := os.Stat(keyFile)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("ML-DSA key file: %v, mode %v", err, st.Mode().Perm())
	}

	tn.stop(0)
	again, err := directory.NewAuthority(tn.nodes[0].cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cur := again.Current(); cur == nil || !bytes.Equal(cur.Raw(), tn.nodes[0].auth.Current().Raw()) {
		t.Error("restarted authority did not load its stored consensus")
	}
	if err := os.Chmod(keyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := directory.NewAuthority(tn.nodes[0].cfg, nil, nil); err == nil || !strings.Contains(err.Error(), "0600") {
		t.Errorf("ML-DSA key readable by others: got %v, want a mode error", err)
	}
}

// TestMeasuredWeightsNetwork: three authorities measure relays (each its
// own way) and publish one consensus whose weights are the low medians of
// their measurements, bounded by the relays' claims; a relay only one
// authority measured gets the default weight, marked Unmeasured.
func TestMeasuredWeightsNetwork(t *testing.T) {
	t.Parallel()
	tn := startNet(t, 3, testParams())
	mk := func(nick string, sessions uint64) *dirtest.Relay {
		r, err := dirtest.NewRelay(nil, "127.0.0.1:1", time.Now(), directory.RoleGuard)
		if err != nil {
			t.Fatal(err)
		}
		r.Desc.Nickname, r.Desc.Capacity.Sessions = nick, sessions
		return r
	}
	spread, once, modest, huge := mk("spread", 10), mk("once", 10), mk("modest", 1), mk("huge", 1<<20)
	for i, w := range []uint64{100, 300, 200} {
		tn.nodes[i].prober.SetWeight(spread.Fingerprint(), w)
		tn.nodes[i].prober.SetWeight(modest.Fingerprint(), 5000) // claims 1 session: bound 1024
		tn.nodes[i].prober.SetWeight(huge.Fingerprint(), w)      // claims 2^20 sessions: no help
	}
	tn.nodes[1].prober.SetWeight(once.Fingerprint(), 999)
	for _, r := range []*dirtest.Relay{spread, once, modest, huge} {
		tn.upload(signedNow(t, r))
	}
	// A period whose votes (made VD+DD = one interval before it starts)
	// all come after the uploads.
	cs := tn.waitConsensus(time.Now().Add(testInterval), 0, 1, 2)
	for i, c := range cs[1:] {
		if !bytes.Equal(c.Raw(), cs[0].Raw()) {
			t.Fatalf("consensus at auth%d differs from auth0", i+1)
		}
	}
	c := verifyWith(t, tn.trust, cs[0].Raw())
	if c.Method != directory.ConsensusMethod {
		t.Fatalf("consensus method %d", c.Method)
	}
	// Measured raw weights 200, 1024, 200: low median 200, cap 2000.
	want := map[*dirtest.Relay]struct {
		w          uint64
		unmeasured bool
	}{spread: {200, false}, once: {20, true}, modest: {1024, false}, huge: {200, false}}
	for r, w := range want {
		e := c.Relay(r.Fingerprint())
		if e == nil || e.Weight != w.w || e.Unmeasured != w.unmeasured {
			t.Errorf("%s: entry %+v, want weight %d unmeasured %v", r.Desc.Nickname, e, w.w, w.unmeasured)
		}
	}
}

// TestScheduleToleratesSlowProbes: relays whose probes and measurements
// take the whole probe timeout (hanging relays, a loaded machine) do not
// make authorities miss periods: probing ends before the vote phase opens,
// so votes go out on time and every period gets a consensus signed by all
// three authorities.
func TestScheduleToleratesSlowProbes(t *testing.T) {
	t.Parallel()
	tn := startNetCfg(t, 3, testParams(), false, func(c *directory.AuthorityConfig) {
		c.Interval, c.ProbeTimeout = 4*time.Second, 500*time.Millisecond
	})
	rnd := dirtest.Rand("slow-probes")
	for i := range 3 {
		r, err := dirtest.NewRelay(rnd, fmt.Sprintf("127.0.0.1:%d", 6100+i), time.Now(), directory.RoleGuard)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range tn.nodes {
			n.prober.SetHang(r.Fingerprint(), true)
		}
		tn.upload(signedNow(t, r))
	}
	after := time.Time{}
	for period := range 3 {
		cs := tn.waitConsensus(after, 0, 1, 2)
		for i, c := range cs {
			if len(c.Signatures) != 3 || len(c.Relays) != 3 {
				t.Fatalf("period %d, %s: %d signatures and %d relays, want 3 and 3", period, tn.nodes[i].name, len(c.Signatures), len(c.Relays))
			}
			if i > 0 && !c.ValidAfter.Equal(cs[0].ValidAfter) {
				t.Fatalf("period %d: authorities published different periods", period)
			}
		}
		if period > 0 && !cs[0].ValidAfter.Equal(after.Add(tn.interval)) {
			t.Fatalf("period %d: published %s after %s: a period was missed", period, cs[0].ValidAfter, after)
		}
		after = cs[0].ValidAfter
	}
}
