package testnet

// Overload and relay loss, on real processes (issue 22, items 1 and 2):
//
//   - TestOverloadIsNotFailure: relays at capacity make the client answer
//     503 (or 429 for its own concurrency) with Retry-After, never 404, and
//     cost them nothing once the load is gone.
//   - TestMPCPartyLossRecovers: a party or dealer killed (-9) mid-stream is
//     failed over from at once (the circuit's DESTROY, not a step timeout),
//     the completion is the same, the relay is used again after it restarts,
//     and with no spare party left the stream ends with a clean OpenAI error
//     and [DONE].

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/relay/cell"
	"github.com/unfed/unfed/relay/hop"
	"github.com/unfed/unfed/relay/link"
	"github.com/unfed/unfed/relay/origin"
)

// startNetworkPatched is startNetwork with every node's configuration
// passed through patch (if not nil) before anything starts.
func startNetworkPatched(t *testing.T, spec Spec, patch func(node *Node, cfg map[string]any)) *Network {
	t.Helper()
	spec.Dir = t.TempDir()
	spec.BinDir = binDir
	spec.Model = modelPath(t)
	spec.Client = true
	if spec.Interval == 0 {
		spec.Interval = 3 * time.Second
	}
	n, err := Generate(spec)
	if err != nil {
		t.Fatal(err)
	}
	for _, node := range n.Nodes {
		if patch == nil {
			break
		}
		raw, err := os.ReadFile(node.Config)
		if err != nil {
			t.Fatal(err)
		}
		var cfg map[string]any
		if err := yaml.Unmarshal(raw, &cfg); err != nil {
			t.Fatal(err)
		}
		patch(node, cfg)
		if err := writeConfig(node.Config, cfg); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	t.Cleanup(func() {
		if err := n.StopAll(15 * time.Second); err != nil {
			t.Errorf("unclean shutdown: %v", err)
		}
		if t.Failed() {
			dumpLogs(t, n)
		}
	})
	if err := n.Start(ctx, false, io.Discard); err != nil {
		t.Fatal(err)
	}
	return n
}

// patientAuthorities gives the authorities of a network with a 4 s interval
// 750 ms per reachability probe instead of a quarter of a 1 s vote delay: a
// relay whose probe fails is not Running in the next consensus, and these
// tests need every party listed throughout, on a machine whose cores every
// relay shares (a link handshake can take longer than 250 ms there).
func patientAuthorities(node *Node, cfg map[string]any) {
	if node.Kind == "dirauth" {
		cfg["vote_delay"], cfg["dist_delay"], cfg["probe_timeout"] = "2s", "1s", "750ms"
	}
}

// section returns cfg[key] as a map, creating it.
func section(cfg map[string]any, key string) map[string]any {
	m, ok := cfg[key].(map[string]any)
	if !ok {
		m = map[string]any{}
		cfg[key] = m
	}
	return m
}

// authorityConsensus fetches auth1's current consensus. It is not verified:
// the test only reads which relays it lists, and acts on nothing else.
func authorityConsensus(ctx context.Context, n *Network) (*directory.Consensus, error) {
	body, err := getBody(ctx, "http://"+n.Node("auth1").Listeners["dir"]+"/unfed/dir/v1/consensus")
	if err != nil {
		return nil, err
	}
	u, err := directory.ParseConsensus([]byte(body))
	if err != nil {
		return nil, err
	}
	return u.Unchecked(), nil
}

// heldSessions are compute sessions a stand-in for another client holds
// open on relays, taking their session slots.
type heldSessions struct {
	mux   *origin.Mux
	circs []*origin.Circuit
}

// release destroys the circuits: the relays free the sessions.
func (h *heldSessions) release() {
	for _, c := range h.circs {
		c.Destroy()
	}
	h.mux.Close()
}

// holdPartySessions opens, over its own link to guard1, one circuit per
// party node (guard → party) and a party SETUP on it (party A for the
// first, B for the others) for the single stage [0, layers) of the model,
// and keeps them open: each takes one of that relay's party session slots,
// as a flooding client would.
func holdPartySessions(ctx context.Context, n *Network, parties []*Node) (*heldSessions, error) {
	c, err := authorityConsensus(ctx, n)
	if err != nil {
		return nil, err
	}
	if len(c.Models) != 1 {
		return nil, fmt.Errorf("consensus catalog has %d models", len(c.Models))
	}
	status := func(node *Node) (*directory.RouterStatus, error) {
		for i := range c.Relays {
			if c.Relays[i].Fingerprint.String() == node.Fingerprint {
				return &c.Relays[i], nil
			}
		}
		return nil, fmt.Errorf("%s is not in the consensus", node.Name)
	}
	g, err := status(n.Node("guard1"))
	if err != nil {
		return nil, err
	}
	var addr string
	for _, tr := range g.Transports {
		if tr.Name == "tcp" {
			addr = tr.Addr
		}
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	lc, err := link.Dial(ctx, conn, link.DialConfig{ExpectFingerprint: g.Fingerprint, ExpectLinkKey: g.LinkKey})
	if err != nil {
		return nil, err
	}
	h := &heldSessions{mux: origin.NewMux(lc, nil)}
	for i, node := range parties {
		p, err := status(node)
		if err != nil {
			h.release()
			return nil, err
		}
		circ, err := h.mux.Build(ctx, []origin.HopInfo{hopInfoOf(g), hopInfoOf(p)}, origin.Options{})
		if err != nil {
			h.release()
			return nil, fmt.Errorf("circuit to %s: %w", node.Name, err)
		}
		h.circs = append(h.circs, circ)
		setup := &hop.Setup{Role: hop.RolePartyA, Input: hop.InputShares, First: 0, Last: n.Spec.Layers,
			ModelID: c.Models[0].ID, Pair: secret(), Deal: secret()}
		if i > 0 {
			setup.Role, setup.Deal, setup.DealB = hop.RolePartyB, nil, secret()
		}
		if err := circ.Send(ctx, 1, setup.Append(nil)); err != nil {
			h.release()
			return nil, err
		}
		_, b, err := circ.Recv(ctx)
		if err != nil {
			h.release()
			return nil, err
		}
		if m, err := hop.Decode(b); err != nil || m.Type() != hop.TypeSetupOK {
			h.release()
			return nil, fmt.Errorf("%s answered the held SETUP with %v (%v)", node.Name, m, err)
		}
	}
	return h, nil
}

func secret() *hop.EdgeSecret {
	var s hop.EdgeSecret
	rand.Read(s[:])
	return &s
}

func hopInfoOf(r *directory.RouterStatus) origin.HopInfo {
	h := origin.HopInfo{Fingerprint: r.Fingerprint, IdentityKey: r.Identity, OnionKey: r.Onion.X25519, XWingKey: r.Onion.XWing}
	for _, tr := range r.Transports {
		h.LinkSpecs = append(h.LinkSpecs, cell.LinkSpec{Transport: tr.Name, Addr: tr.Addr, LinkKey: r.LinkKey, Args: strings.Join(tr.Args, " ")})
	}
	return h
}

// apiAnswer is one HTTP answer of the client API.
type apiAnswer struct {
	status     int
	retryAfter string
	body       []byte
}

func apiDo(ctx context.Context, method, url string, body any) (apiAnswer, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return apiAnswer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return apiAnswer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return apiAnswer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), body: b}, err
}

// listedModels returns the ids /v1/models lists.
func listedModels(ctx context.Context, api string) ([]string, error) {
	a, err := apiDo(ctx, "GET", api+"/v1/models", nil)
	if err != nil {
		return nil, err
	}
	if a.status != 200 {
		return nil, fmt.Errorf("/v1/models: %d %s", a.status, a.body)
	}
	var r struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(a.body, &r); err != nil {
		return nil, err
	}
	var ids []string
	for _, d := range r.Data {
		ids = append(ids, d.ID)
	}
	return ids, nil
}

// checkRetryLater checks an answer that tells the caller to come back: its
// status, an OpenAI error body of the given type and code, and a
// Retry-After of whole seconds, at least 1.
func checkRetryLater(a apiAnswer, status int, typ, code string) error {
	var e struct {
		Error struct {
			Message string  `json:"message"`
			Type    string  `json:"type"`
			Code    *string `json:"code"`
		} `json:"error"`
	}
	if a.status != status {
		return fmt.Errorf("status %d, want %d: %s", a.status, status, a.body)
	}
	if err := json.Unmarshal(a.body, &e); err != nil || e.Error.Type != typ || e.Error.Code == nil || *e.Error.Code != code || e.Error.Message == "" {
		return fmt.Errorf("error body %s, want type %s code %s", a.body, typ, code)
	}
	if s, err := strconv.Atoi(a.retryAfter); err != nil || s < 1 {
		return fmt.Errorf("Retry-After %q, want whole seconds ≥ 1 (%s)", a.retryAfter, a.body)
	}
	return nil
}

// TestOverloadIsNotFailure: a stand-in for another client takes every
// party session of a one-stage network (parties allow one session each).
// While it holds them, the client's requests are refused for capacity by
// the parties: the client answers 503 service_unavailable with Retry-After
// (and 429 with Retry-After to a request beyond its own concurrency of
// one), never 404, and /v1/models and /v1/models/{id} still list the
// model. Once the sessions are released, the next requests succeed with the
// same text as local generation: capacity refusals excluded nobody.
func TestOverloadIsNotFailure(t *testing.T) {
	const queueTimeout = "8s" // longer than a busy relay's longest back-off (6 s)
	n := startNetworkPatched(t, Spec{Stages: 1, Parties: 2, Dealers: 1, Shards: 1, Replicas: 1, Interval: 4 * time.Second},
		func(node *Node, cfg map[string]any) {
			patientAuthorities(node, cfg)
			switch node.Role {
			case "party":
				section(cfg, "compute")["max_sessions"] = 1
			case "client":
				c := section(cfg, "circuit")
				c["queue_timeout"], c["max_concurrent"], c["max_queued"] = queueTimeout, 1, -1
			}
		})
	api, _, _ := n.ClientAddrs()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const tokens = 12
	want := localGreedy(t, n.Spec.Model, e2ePrompt, tokens)
	// The first model listed may be the anonymous mode's while the parties
	// are not yet Running: ask for confidential circuits once servable.
	model, err := modelForMode(ctx, api, "confidential")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := completeModel(ctx, api, model, e2ePrompt, tokens); err != nil || got != want {
		t.Fatalf("before the load: %q, %v; want %q", got, err, want)
	}
	var parties []*Node
	for _, node := range n.Nodes {
		if node.Role == "party" {
			parties = append(parties, node)
		}
	}
	held, err := holdPartySessions(ctx, n, parties)
	if err != nil {
		t.Fatal(err)
	}
	defer held.release()

	completion := map[string]any{"model": model, "prompt": e2ePrompt, "max_tokens": tokens, "temperature": 0}
	// Two requests at once: one takes the client's only generation slot
	// and meets the parties' refusals (503 once its queue time is spent),
	// the other finds the slot taken and no queue (429 at once).
	answers := make([]apiAnswer, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range answers {
		wg.Go(func() { answers[i], errs[i] = apiDo(ctx, "POST", api+"/v1/completions", completion) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(answers, func(a, b apiAnswer) int { return a.status - b.status })
	if err := checkRetryLater(answers[0], http.StatusTooManyRequests, "requests", "rate_limit_exceeded"); err != nil {
		t.Fatalf("the request beyond the client's concurrency: %v", err)
	}
	if err := checkRetryLater(answers[1], http.StatusServiceUnavailable, "server_error", "service_unavailable"); err != nil {
		t.Fatalf("the request the parties refused: %v", err)
	}
	t.Logf("parties full: %d Retry-After %s %s; %d Retry-After %s", answers[1].status, answers[1].retryAfter,
		bytes.TrimSpace(answers[1].body), answers[0].status, answers[0].retryAfter)
	// Streamed, the refusal still comes before the first token: a status.
	stream := map[string]any{"model": model, "prompt": e2ePrompt, "max_tokens": tokens, "temperature": 0, "stream": true}
	if a, err := apiDo(ctx, "POST", api+"/v1/completions", stream); err != nil {
		t.Fatal(err)
	} else if err := checkRetryLater(a, http.StatusServiceUnavailable, "server_error", "service_unavailable"); err != nil {
		t.Fatalf("streamed request while the parties are full: %v", err)
	}
	// The model is still listed and resolvable: busy is not absent.
	if ids, err := listedModels(ctx, api); err != nil || !slices.Contains(ids, model) {
		t.Fatalf("/v1/models while the parties are full: %v, %v; want %s listed", ids, err, model)
	}
	if a, err := apiDo(ctx, "GET", api+"/v1/models/"+model, nil); err != nil || a.status != 200 {
		t.Fatalf("/v1/models/%s while the parties are full: %d %s %v", model, a.status, a.body, err)
	}

	held.release()
	// The load is gone: the next requests succeed, the first one included.
	for i := range 3 {
		if got, err := completeModel(ctx, api, model, e2ePrompt, tokens); err != nil || got != want {
			t.Fatalf("request %d after the load: %q, %v; want %q", i, got, err, want)
		}
	}
	if ids, err := listedModels(ctx, api); err != nil || !slices.Contains(ids, model) {
		t.Fatalf("/v1/models after the load: %v, %v", ids, err)
	}
}

// streamOutcome is what a streamed completion delivered.
type streamOutcome struct {
	text   string
	errMsg string // the in-band error event's message, "" if none
	errObj map[string]any
	done   bool // data: [DONE] arrived
}

// streamCompletion streams a greedy completion, calling onText with every
// text piece, and records an in-band error and whether [DONE] came.
func streamCompletion(ctx context.Context, api, model string, maxTokens int, onText func()) (streamOutcome, error) {
	var out streamOutcome
	body, _ := json.Marshal(map[string]any{"model": model, "prompt": e2ePrompt, "max_tokens": maxTokens, "temperature": 0, "stream": true})
	req, _ := http.NewRequestWithContext(ctx, "POST", api+"/v1/completions", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return out, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return out, fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	var text strings.Builder
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if line == "[DONE]" {
			out.done = true
			continue
		}
		var ev struct {
			Choices []struct {
				Text string `json:"text"`
			} `json:"choices"`
			Error map[string]any `json:"error"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			return out, fmt.Errorf("bad event %q: %w", line, err)
		}
		if ev.Error != nil {
			out.errObj = ev.Error
			out.errMsg, _ = ev.Error["message"].(string)
		}
		for _, c := range ev.Choices {
			if c.Text != "" {
				text.WriteString(c.Text)
				if onText != nil {
					onText()
				}
			}
		}
	}
	out.text = text.String()
	return out, sc.Err()
}

// nodeByFingerprint returns the node with the given fingerprint.
func nodeByFingerprint(n *Network, fp string) *Node {
	for _, node := range n.Nodes {
		if node.Fingerprint == fp {
			return node
		}
	}
	return nil
}

// waitListedAt waits until auth1's consensus lists node Running at the
// address it listens on now (after a restart: its new descriptor).
func waitListedAt(ctx context.Context, n *Network, node *Node) error {
	addr := node.Listeners["or"]
	var last string
	for {
		c, err := authorityConsensus(ctx, n)
		if err == nil {
			last = "not listed"
			for _, r := range c.Relays {
				if r.Fingerprint.String() != node.Fingerprint {
					continue
				}
				last = fmt.Sprintf("listed with %v, flags %v", r.Transports, r.Flags)
				for _, tr := range r.Transports {
					if tr.Addr == addr && r.HasFlag(directory.FlagRunning) {
						return nil
					}
				}
			}
		}
		if !waitCtx(ctx, 250*time.Millisecond) {
			return fmt.Errorf("%s (now at %s) not listed Running: %s", node.Name, addr, last)
		}
	}
}

// TestMPCPartyLossRecovers kills (-9) relays of the confidential circuit in
// use while a greedy completion streams, on a network with a spare of every
// role: first party A of the first stage, then, on the next request, the
// dealer of the last stage. The client's step timeout is ten minutes and
// every request must finish within two, so the failover cannot come from
// the timeout: it comes from the DESTROY of the dead relay's neighbours.
// Each completion is identical to local generation and ends with [DONE].
// Both relays restart (same identity, new address); once the consensus
// lists them again, every request succeeds and the client's circuits use
// both again (no stale exclusion). Last, with a spare no longer available
// (a second party of a stage killed before the request and the third while
// it streams), the stream ends with a clean OpenAI error event and [DONE].
func TestMPCPartyLossRecovers(t *testing.T) {
	n := startNetworkPatched(t, Spec{Parties: 3, Dealers: 3, Replicas: 1, Interval: 4 * time.Second}, func(node *Node, cfg map[string]any) {
		patientAuthorities(node, cfg)
		if node.Role == "client" {
			section(cfg, "circuit")["step_timeout"] = "10m"
		}
	})
	api, _, _ := n.ClientAddrs()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	// The first model listed may be the anonymous mode's while the parties
	// are not yet Running (an authority that starts late in a period
	// votes without waiting for the next one): ask for confidential
	// circuits, once they are servable.
	model, err := modelForMode(ctx, api, "confidential")
	if err != nil {
		t.Fatal(err)
	}
	const tokens = 32
	want := localGreedy(t, n.Spec.Model, e2ePrompt, tokens)
	if !strings.Contains(want, " ") || len(want) < 20 {
		t.Fatalf("local generation %q is too short to kill a relay in the middle of", want)
	}
	// streamAndKill streams a completion and, at its first text, kills the
	// relay choose picks from the circuit in use.
	streamAndKill := func(choose func(hops []CircuitHop) (CircuitHop, error)) (*Node, streamOutcome) {
		t.Helper()
		var once sync.Once
		var killed *Node
		var killErr error
		rctx, rcancel := context.WithTimeout(ctx, 2*time.Minute)
		defer rcancel()
		out, err := streamCompletion(rctx, api, model, tokens, func() {
			once.Do(func() {
				circs, err := ClientCircuits(rctx, n)
				if err != nil || len(circs) == 0 {
					killErr = fmt.Errorf("no circuit to attack: %v", err)
					return
				}
				h, err := choose(circs[len(circs)-1])
				if err != nil {
					killErr = err
					return
				}
				if killed = nodeByFingerprint(n, h.Fingerprint); killed == nil {
					killErr = fmt.Errorf("no node for %s", h.Fingerprint)
					return
				}
				killErr = n.Kill(killed.Name)
			})
		})
		if err != nil {
			t.Fatalf("streamed request: %v (killed %v)", err, killed)
		}
		if killErr != nil || killed == nil {
			t.Fatalf("no relay killed mid-stream: %v", killErr)
		}
		return killed, out
	}
	byRole := func(role string, stage int) func([]CircuitHop) (CircuitHop, error) {
		return func(hops []CircuitHop) (CircuitHop, error) {
			if err := checkConfidential(hops, n.Spec.Layers); err != nil {
				return CircuitHop{}, err
			}
			i := 1 + 3*stage
			if stage < 0 {
				i = len(hops) - 3
			}
			switch role {
			case "party-A":
				i++
			case "party-B":
				i += 2
			}
			return hops[i], nil
		}
	}

	// A party, then a dealer, killed mid-stream: the completion survives.
	var lost []*Node
	for _, target := range []struct {
		role  string
		stage int
	}{{"party-A", 0}, {"dealer", -1}} {
		killed, out := streamAndKill(byRole(target.role, target.stage))
		lost = append(lost, killed)
		if out.errObj != nil || !out.done || out.text != want {
			t.Fatalf("after killing %s (%s) mid-stream: text %q, error %v, [DONE] %v; want %q and [DONE]",
				killed.Name, target.role, out.text, out.errObj, out.done, want)
		}
		t.Logf("killed %s (%s) mid-stream: the completion matched and ended with [DONE]", killed.Name, target.role)
	}

	// Both come back with the same identity on new ports.
	for _, node := range lost {
		if err := n.Restart(ctx, node.Name); err != nil {
			t.Fatal(err)
		}
	}
	for _, node := range lost {
		wctx, wcancel := context.WithTimeout(ctx, time.Minute)
		err := waitListedAt(wctx, n, node)
		wcancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	const short = 8
	wantShort := localGreedy(t, n.Spec.Model, e2ePrompt, short)
	seen := map[string]bool{}
	for i := 0; i < 40 && len(seen) < len(lost); i++ {
		got, err := completeModel(ctx, api, model, e2ePrompt, short)
		if err != nil || got != wantShort {
			t.Fatalf("request %d after the restarts: %q, %v; want %q", i, got, err, wantShort)
		}
		circs, err := ClientCircuits(ctx, n)
		if err != nil || len(circs) == 0 {
			t.Fatalf("client circuits: %v", err)
		}
		for _, h := range circs[len(circs)-1] {
			for _, node := range lost {
				if h.Fingerprint == node.Fingerprint {
					seen[node.Name] = true
				}
			}
		}
	}
	for _, node := range lost {
		if !seen[node.Name] {
			t.Fatalf("the client never used %s again after it restarted (used: %v)", node.Name, seen)
		}
	}
	t.Logf("after the restarts the client used %v again", seen)

	// No spare: kill one party of the first stage outright, then the one of
	// the remaining two that the streaming circuit uses. One party is left
	// for a stage that needs two: the request fails cleanly.
	circs, err := ClientCircuits(ctx, n)
	if err != nil || len(circs) == 0 {
		t.Fatalf("client circuits: %v", err)
	}
	last := circs[len(circs)-1]
	first := [2]int{last[2].Layers[0], last[2].Layers[1]}
	var spare *Node
	for _, node := range n.Nodes {
		if node.Role == "party" && node.Layers == first && !node.Killed &&
			node.Fingerprint != last[2].Fingerprint && node.Fingerprint != last[3].Fingerprint {
			spare = node
		}
	}
	if spare == nil {
		t.Fatalf("no third party of stage %v to kill", first)
	}
	if err := n.Kill(spare.Name); err != nil {
		t.Fatal(err)
	}
	killed, out := streamAndKill(byRole("party-B", 0))
	if !out.done || out.errObj == nil {
		t.Fatalf("no spare after killing %s and %s: text %q, error %v, [DONE] %v; want an error event and [DONE]",
			spare.Name, killed.Name, out.text, out.errObj, out.done)
	}
	if out.errObj["type"] != "server_error" || out.errObj["code"] != "service_unavailable" || out.errMsg == "" ||
		!strings.HasPrefix(want, out.text) {
		t.Fatalf("in-band error %v after text %q (a prefix of %q)", out.errObj, out.text, want)
	}
	t.Logf("no spare left after killing %s and %s: %q, then [DONE]", spare.Name, killed.Name, out.errMsg)
}
