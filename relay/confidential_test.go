package relay_test

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/unfed/unfed/compute/audit"
	"github.com/unfed/unfed/compute/model"
	"github.com/unfed/unfed/compute/modeltest"
	"github.com/unfed/unfed/compute/mpc"
	"github.com/unfed/unfed/relay"
	"github.com/unfed/unfed/relay/hop"
	"github.com/unfed/unfed/relay/link"
	"github.com/unfed/unfed/relay/origin"
	"github.com/unfed/unfed/transports/tcp"
)

// TestConfidentialRelays runs a guard, a dealer and two party relays (one
// stage, all of stories260K) as relay.Run processes with audit_capture, builds
// client → guard → D → A → B over TCP from their descriptors and decodes
// greedily on shares, matching the unsplit engine. Then every relay's
// capture.log (mode 0600) is read with compute/audit's reader: the guard's is
// empty, and each other relay recorded exactly the kinds of messages its role
// receives and sends, every one of which decodes.
func TestConfidentialRelays(t *testing.T) {
	path := modeltest.Path(t, "stories260K.gguf")
	man, err := model.ComputeManifest(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	id := man.IDHex()
	fa := newFakeAuthority(t)
	var cfgs []relay.Config
	for _, r := range []struct{ nick, role string }{{"guard", "guard"}, {"dealer", "dealer"}, {"a", "mpc"}, {"b", "mpc"}} {
		c := testConfig(t, r.nick, r.role)
		c.Authorities, c.AuditCapture = fa.entry(), true
		if r.role != "guard" {
			c.Compute.Model, c.Compute.First, c.Compute.Last = path, 0, 5
		}
		cfgs = append(cfgs, c)
	}
	var nodes []*node
	var hops []origin.HopInfo
	for _, c := range cfgs {
		n := startRelay(t, c)
		nodes = append(nodes, n)
		hops = append(hops, hopInfoOf(fa.descriptorOf(t, n.fp)))
	}

	g := fa.descriptorOf(t, nodes[0].fp)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := tcp.Dialer{}.DialContext(ctx, g.Transports[0].Addr)
	if err != nil {
		t.Fatal(err)
	}
	lc, err := link.Dial(ctx, conn, link.DialConfig{ExpectFingerprint: g.Fingerprint(), ExpectLinkKey: g.LinkKey})
	if err != nil {
		t.Fatal(err)
	}
	circ, err := origin.Build(ctx, lc, hops, origin.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer circ.Destroy()

	var deal, dealB, pair hop.EdgeSecret
	for _, s := range []*hop.EdgeSecret{&deal, &dealB, &pair} {
		if _, err := rand.Read(s[:]); err != nil {
			t.Fatal(err)
		}
	}
	send(t, circ, 1, &hop.Setup{Role: hop.RoleDealer, Input: hop.InputNone, First: 0, Last: 5, ModelID: id, Deal: &deal, DealB: &dealB})
	send(t, circ, 2, &hop.Setup{Role: hop.RolePartyA, Input: hop.InputShares, First: 0, Last: 5, ModelID: id, Pair: &pair, Deal: &deal})
	send(t, circ, 3, &hop.Setup{Role: hop.RolePartyB, Input: hop.InputShares, First: 0, Last: 5, ModelID: id, Pair: &pair, DealB: &dealB})
	for range 3 {
		if _, ok := recv(t, circ).(*hop.SetupOK); !ok {
			t.Fatal("a relay did not answer SETUP_OK")
		}
	}
	ends, err := model.LoadEnds(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ends.Close()
	mc, err := mpc.ConfigOf(ends.Config())
	if err != nil {
		t.Fatal(err)
	}
	hash := mpc.StageHash(mc, mpc.Params{}, 0, 5)

	ids := prompt(t, path)
	const n = 4
	want := localGreedy(t, path, ids, n)
	var got []int
	step, pos := 0, 0
	batch := ids
	for len(got) < n {
		// One step per batch: the prompt's positions cross the stage
		// together (spec/10 §5).
		send(t, circ, 1, &hop.Deal{Step: step, Rows: len(batch)})
		var x []float32
		for _, tok := range batch {
			row, err := ends.Embed(tok)
			if err != nil {
				t.Fatal(err)
			}
			x = append(x, row...)
		}
		a, b, err := mpc.ShareInputs(x, len(batch), hash, uint32(step), pos)
		if err != nil {
			t.Fatal(err)
		}
		send(t, circ, 2, &hop.MPCInput{Final: true, Body: a})
		send(t, circ, 3, &hop.MPCInput{Final: true, Body: b})
		step++
		pos += len(batch)
		var outs [][]byte
		for range 2 {
			o, ok := recv(t, circ).(*hop.MPCOutput)
			if !ok {
				t.Fatal("no MPC_OUTPUT")
			}
			outs = append(outs, o.Body)
		}
		h, err := mpc.ReconstructOutputs(outs[0], outs[1], hash, uint32(step-1))
		if err != nil {
			t.Fatal(err)
		}
		lg, err := ends.Logits(h)
		if err != nil {
			t.Fatal(err)
		}
		next := hop.TopK(lg, 1)[0].ID
		got = append(got, next)
		batch = []int{next}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("confidential relays generated %v, the unsplit engine %v", got, want)
	}
	circ.Destroy()
	for _, n := range nodes {
		n.stop(t)
	}

	// The captures.
	// One step for the prompt, one per generated token but the last.
	steps := n
	for i, c := range cfgs {
		file := filepath.Join(c.DataDir, relay.CaptureFile)
		fi, err := os.Stat(file)
		if err != nil {
			t.Fatalf("%s: %v", c.Nickname, err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: capture file mode %v", c.Nickname, fi.Mode())
		}
		recs, err := audit.ReadCapture(file)
		if err != nil {
			t.Fatalf("%s: %v", c.Nickname, err)
		}
		count := map[string]int{}
		frags := 0
		for _, r := range recs {
			var name string
			if r.Dir.Edge() {
				m, err := hop.DecodeEdge(r.Msg)
				if err != nil {
					t.Fatalf("%s: captured edge message: %v", c.Nickname, err)
				}
				name = m.EdgeType().String()
				if p, ok := m.(*hop.MPCPrep); ok && p.More {
					name += " MORE" // a B PREP of 5 layers outgrows one message
				}
			} else {
				m, err := hop.Decode(r.Msg)
				if err != nil {
					t.Fatalf("%s: captured client message: %v", c.Nickname, err)
				}
				name = m.Type().String()
			}
			count[r.Dir.String()+" "+name]++
		}
		frags = count["to-edge MPC_PREP MORE"] + count["from-edge MPC_PREP MORE"]
		delete(count, "to-edge MPC_PREP MORE")
		delete(count, "from-edge MPC_PREP MORE")
		var wantCount map[string]int
		switch i {
		case 0:
			wantCount = map[string]int{}
		case 1:
			wantCount = map[string]int{"from-client SETUP": 1, "to-client SETUP_OK": 1, "from-client DEAL": n,
				"to-edge MPC_PREP": 2 * steps}
			// B's PREPs of five layers (explicit shares) outgrow one
			// message: the circuit carried fragments.
			if frags == 0 {
				t.Errorf("dealer: no PREP was fragmented")
			}
		default:
			wantCount = map[string]int{"from-client SETUP": 1, "to-client SETUP_OK": 1, "from-client MPC_INPUT": steps,
				"from-edge MPC_PREP": steps, "to-client MPC_OUTPUT": n,
				"from-edge MPC_PEER": count["from-edge MPC_PEER"], "to-edge MPC_PEER": count["to-edge MPC_PEER"]}
			if count["from-edge MPC_PEER"] == 0 || count["to-edge MPC_PEER"] == 0 {
				t.Errorf("%s: no peer traffic captured", c.Nickname)
			}
		}
		if !mapsEqual(count, wantCount) {
			t.Errorf("%s captured %v, want %v (and %d fragments with MORE)", c.Nickname, count, wantCount, frags)
		}
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
