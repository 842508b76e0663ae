package relay_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/unfed/unfed/compute/gguf"
	"github.com/unfed/unfed/compute/model"
	"github.com/unfed/unfed/compute/modeltest"
	"github.com/unfed/unfed/compute/tokenizer"
	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/relay"
	"github.com/unfed/unfed/relay/cell"
	"github.com/unfed/unfed/relay/hop"
	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/relay/link"
	"github.com/unfed/unfed/relay/origin"
	"github.com/unfed/unfed/transports/tcp"
)

// TestNetwork starts one authority (probing with relay.LinkProber) and three
// relays — a guard serving the consensus, S1 [0,3) and S2 [3,5) of
// stories260K — checks the consensus and its flags, fetches it from the
// guard's cache, then builds client → guard → S1 → S2 over real TCP links
// from what the consensus says and generates greedily, matching the unsplit
// engine.
func TestNetwork(t *testing.T) {
	path := modeltest.Path(t, "stories260K.gguf")
	man, err := model.ComputeManifest(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	id := man.IDHex()
	auth := startAuthority(t, []directory.ModelConfig{{ID: id, Architecture: "llama", Layers: 5, TensorHashRoot: id,
		Shards: []directory.ShardConfig{{First: 0, Last: 3}, {First: 3, Last: 5}}}}, relay.NewLinkProber(nil))

	gcfg := testConfig(t, "guard", "guard")
	gcfg.Authorities = []directory.AuthorityEntry{auth.entry}
	gcfg.Dir.Listen = "127.0.0.1:0"
	guard := startRelay(t, gcfg)
	var shards []*node
	for i, r := range []model.LayerRange{{First: 0, Last: 3}, {First: 3, Last: 5}} {
		cfg := testConfig(t, []string{"s1", "s2"}[i], "compute")
		cfg.Authorities = gcfg.Authorities
		cfg.Compute.Model, cfg.Compute.First, cfg.Compute.Last, cfg.Compute.Threads = path, r.First, r.Last, 1
		cfg.Compute.RefuseTokens = i != 0
		shards = append(shards, startRelay(t, cfg))
	}

	// The consensus lists the three relays with the flags their roles earn
	// once the link prober reached them (and SETUP succeeded on the shards).
	want := map[keys.Fingerprint][]directory.Flag{
		guard.fp:     {directory.FlagGuard, directory.FlagRunning, directory.FlagValid},
		shards[0].fp: {directory.FlagCompute, directory.FlagRunning, directory.FlagValid},
		shards[1].fp: {directory.FlagCompute, directory.FlagRunning, directory.FlagValid},
	}
	cons := waitConsensus(t, auth, want)

	// /healthz is 200 once a descriptor was uploaded.
	if code := httpGet(t, "http://"+guard.addr("metrics")+"/healthz"); code != http.StatusOK {
		t.Fatalf("guard /healthz: %d", code)
	}
	// The guard's directory cache serves a consensus that verifies.
	f := &directory.Fetcher{Sources: []string{guard.addr("dir")}, Trust: auth.trust}
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := f.Fetch(ctx)
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("fetch from the guard's cache: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// A circuit built from the consensus alone.
	var hops []origin.HopInfo
	for _, n := range []*node{guard, shards[0], shards[1]} {
		hops = append(hops, hopInfo(t, cons.Relay(n.fp)))
	}
	g := cons.Relay(guard.fp)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := tcp.Dialer{}.DialContext(ctx, g.Transports[0].Addr)
	if err != nil {
		t.Fatal(err)
	}
	lc, err := link.Dial(ctx, conn, link.DialConfig{ExpectFingerprint: g.Fingerprint, ExpectLinkKey: g.LinkKey})
	if err != nil {
		t.Fatal(err)
	}
	circ, err := origin.Build(ctx, lc, hops, origin.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer circ.Destroy()

	ids := prompt(t, path)
	const n = 6
	wantGen := localGreedy(t, path, ids, n)
	var s12 hop.EdgeSecret
	if _, err := rand.Read(s12[:]); err != nil {
		t.Fatal(err)
	}
	send(t, circ, 1, &hop.Setup{Role: hop.RoleCompute, Input: hop.InputTokens, First: 0, Last: 3, ModelID: id, Out: &s12, OutHops: 1})
	send(t, circ, 2, &hop.Setup{Role: hop.RoleCompute, Input: hop.InputActivations, First: 3, Last: 5, ModelID: id, In: &s12, TopK: 4})
	for range 2 {
		if _, ok := recv(t, circ).(*hop.SetupOK); !ok {
			t.Fatal("a shard did not answer SETUP_OK")
		}
	}
	var got []int
	start, toks := 0, ids
	for range n {
		send(t, circ, 1, &hop.Tokens{Start: start, IDs: toks})
		lg, ok := recv(t, circ).(*hop.Logits)
		if !ok {
			t.Fatal("no LOGITS")
		}
		next := lg.TopK[0].ID
		got = append(got, next)
		start, toks = start+len(toks), []int{next}
	}
	if !slices.Equal(got, wantGen) {
		t.Fatalf("relays generated %v, the unsplit engine %v", got, wantGen)
	}
}

// waitConsensus waits (at most 60 s) for a consensus listing every relay of
// want with at least its flags, and returns it.
func waitConsensus(t *testing.T, a *authority, want map[keys.Fingerprint][]directory.Flag) *directory.Consensus {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		c := a.auth.Current()
		missing := ""
		if c == nil {
			missing = "no consensus"
		} else {
			for fp, flags := range want {
				rs := c.Relay(fp)
				if rs == nil {
					missing = fp.String() + " not listed"
					break
				}
				for _, f := range flags {
					if !rs.HasFlag(f) {
						missing = fp.String() + " lacks " + string(f)
					}
				}
			}
		}
		if missing == "" {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("consensus not as expected: %s", missing)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// hopInfo is what a client takes from a consensus entry.
func hopInfo(t *testing.T, rs *directory.RouterStatus) origin.HopInfo {
	t.Helper()
	if rs == nil {
		t.Fatal("relay missing from the consensus")
	}
	return hopFrom(rs.Fingerprint, rs.Identity, rs.Onion, rs.LinkKey, rs.Transports)
}

// hopInfoOf is what a client takes from a descriptor.
func hopInfoOf(d *directory.Descriptor) origin.HopInfo {
	return hopFrom(d.Fingerprint(), d.Identity, d.Onion, d.LinkKey, d.Transports)
}

func hopFrom(fp keys.Fingerprint, id ed25519.PublicKey, onion directory.OnionPublic, lk [32]byte, ts []directory.Transport) origin.HopInfo {
	h := origin.HopInfo{Fingerprint: fp, IdentityKey: id, OnionKey: onion.X25519, XWingKey: onion.XWing}
	for _, tr := range ts {
		h.LinkSpecs = append(h.LinkSpecs, cell.LinkSpec{Transport: tr.Name, Addr: tr.Addr, LinkKey: lk, Args: strings.Join(tr.Args, " ")})
	}
	return h
}

func send(t *testing.T, c *origin.Circuit, hopNo int, m hop.Msg) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Send(ctx, hopNo, m.Append(nil)); err != nil {
		t.Fatal(err)
	}
}

func recv(t *testing.T, c *origin.Circuit) hop.Msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, b, err := c.Recv(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, err := hop.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := m.(*hop.Error); ok {
		t.Fatalf("hop error: %v", e)
	}
	return m
}

func httpGet(t *testing.T, url string) int {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func prompt(t *testing.T, path string) []int {
	t.Helper()
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tok, err := tokenizer.FromGGUF(f)
	if err != nil {
		t.Fatal(err)
	}
	return tok.Encode("Once upon a time", true)
}

// localGreedy generates n tokens after ids with the unsplit model.
func localGreedy(t *testing.T, path string, ids []int, n int) []int {
	t.Helper()
	sh, err := model.Load(path, model.ShardOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Close()
	ss, err := sh.NewSession(model.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	lg, err := ss.ForwardTokens(ids, 0)
	if err != nil {
		t.Fatal(err)
	}
	var gen []int
	pos := len(ids)
	for range n {
		next := hop.TopK(lg, 1)[0].ID
		gen = append(gen, next)
		if lg, err = ss.ForwardTokens([]int{next}, pos); err != nil {
			t.Fatal(err)
		}
		pos++
	}
	return gen
}
