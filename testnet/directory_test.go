package testnet

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/unfed/unfed/directory"
)

func trustOf(t *testing.T, n *Network) directory.AuthoritySet {
	t.Helper()
	var entries []directory.AuthorityEntry
	for _, node := range n.Nodes {
		if node.Kind != "dirauth" {
			continue
		}
		st, err := openStore(node)
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, directory.AuthorityEntry{Name: node.Name,
			Identity: base64.StdEncoding.EncodeToString(st.Identity().Public), Address: node.Listeners["dir"]})
	}
	set, err := directory.NewAuthoritySet(entries, false)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// TestConsensusThreeAuthoritiesProcesses: three real dirauth processes and
// the testnet's relays produce one consensus, byte-identical at each
// authority, signed by all three, listing every relay with the flags its
// roles earn, and the model catalog.
func TestConsensusThreeAuthoritiesProcesses(t *testing.T) {
	n := startNetwork(t, Spec{Client: true})
	trust := trustOf(t, n)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// missing lists what c lacks: a relay, or one of its flags. A relay is
	// Running only once the authorities' reachability test of it passed,
	// which on a loaded machine can miss the first consensus; the next one
	// (3 s later) must have it.
	missing := func(c *directory.Consensus) []string {
		var out []string
		for _, node := range n.Nodes {
			if node.Kind != "relay" {
				continue
			}
			var r *directory.RouterStatus
			for i := range c.Relays {
				if c.Relays[i].Fingerprint.String() == node.Fingerprint {
					r = &c.Relays[i]
				}
			}
			if r == nil {
				out = append(out, node.Name+" is not in the consensus")
				continue
			}
			want := map[string]directory.Flag{"guard": directory.FlagGuard, "compute": directory.FlagCompute, "party": directory.FlagMPC, "dealer": directory.FlagDealer}[node.Role]
			for _, f := range []directory.Flag{directory.FlagRunning, directory.FlagValid, want} {
				if !r.HasFlag(f) {
					out = append(out, fmt.Sprintf("%s (%s) lacks flag %s: %v", node.Name, node.Role, f, r.Flags))
				}
			}
		}
		return out
	}
	var docs []string
	var c *directory.Consensus
	var lacks []string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		docs = docs[:0]
		for _, name := range []string{"auth1", "auth2", "auth3"} {
			b, err := getBody(ctx, "http://"+n.Node(name).Listeners["dir"]+"/unfed/dir/v1/consensus")
			if err != nil {
				t.Fatal(err)
			}
			docs = append(docs, b)
		}
		if docs[0] == docs[1] && docs[1] == docs[2] && strings.Count(docs[0], "\ndirectory-signature ed25519 ") == 3 {
			u, err := directory.ParseConsensus([]byte(docs[0]))
			if err != nil {
				t.Fatal(err)
			}
			if c, err = u.Verify(trust, time.Now()); err != nil {
				t.Fatal(err)
			}
			if lacks = missing(c); len(lacks) == 0 {
				break
			}
		}
		time.Sleep(300 * time.Millisecond)
	}
	if docs[0] != docs[1] || docs[1] != docs[2] || c == nil {
		t.Fatal("the authorities serve different consensuses")
	}
	if len(c.Signatures) != 3 {
		t.Fatalf("%d signatures, want 3", len(c.Signatures))
	}
	for _, l := range lacks {
		t.Error(l)
	}
	if len(c.Models) != 1 || c.Models[0].Layers != n.Spec.Layers || len(c.Models[0].Shards) != n.Spec.Shards {
		t.Fatalf("model catalog %+v", c.Models)
	}
}

// TestConsensusTwoAuthoritiesDownProcesses: with two of three authorities
// killed no new consensus is made; the client keeps serving from the last
// valid one until its valid-until, then refuses with a clear error.
func TestConsensusTwoAuthoritiesDownProcesses(t *testing.T) {
	n := startNetwork(t, Spec{Interval: 2 * time.Second})
	api, _, _ := n.ClientAddrs()
	trust := trustOf(t, n)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	model, err := FirstModel(ctx, api)
	if err != nil {
		t.Fatal(err)
	}
	n.Kill("auth2")
	n.Kill("auth3")
	// A round already under way when they died may still finish; let it.
	time.Sleep(2 * n.Spec.Interval)
	b, err := getBody(ctx, "http://"+n.Node("auth1").Listeners["dir"]+"/unfed/dir/v1/consensus")
	if err != nil {
		t.Fatal(err)
	}
	u, _ := directory.ParseConsensus([]byte(b))
	last, err := u.Verify(trust, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if time.Until(last.ValidUntil) > 2*time.Second {
		if _, err := complete(ctx, api, e2ePrompt, 4); err != nil {
			t.Fatalf("client with the last valid consensus: %v", err)
		}
	}
	// Past valid-until the client must refuse, saying why.
	time.Sleep(time.Until(last.ValidUntil) + 3*time.Second)
	if got, err := getBody(ctx, "http://"+n.Node("auth1").Listeners["dir"]+"/unfed/dir/v1/consensus"); err == nil && got != b {
		t.Fatal("a lone authority published a new consensus")
	}
	_, err = completeModel(ctx, api, model, e2ePrompt, 4)
	if err == nil {
		t.Fatal("the client served a request with an expired consensus")
	}
	resp, herr := http.Get("http://" + n.Node("client").Listeners["metrics"] + "/healthz")
	if herr != nil {
		t.Fatal(herr)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !errors.Is(err, errUnavailable) || !strings.Contains(err.Error(), "no valid consensus") || !strings.Contains(err.Error(), "consensus expired") {
		t.Fatalf("expired consensus: healthz %d %q, request error %v; want 503 and an error naming the consensus", resp.StatusCode, body, err)
	}
	t.Logf("after valid-until: healthz %d %q; request error: %v", resp.StatusCode, strings.TrimSpace(string(body)), err)
}
