package testnet

import (
	"cmp"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unfed/unfed/compute/audit"
	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/relay/hop"
	"github.com/unfed/unfed/relay/keys"
)

var (
	cheatOnce sync.Once
	cheatErr  error
)

// buildCheat builds the fault-injection relay (unfed-relay with -tags
// unfedcheat) next to the test binaries, once.
func buildCheat(t *testing.T) {
	t.Helper()
	cheatOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cheatErr = BuildCheat(ctx, binDir)
	})
	if cheatErr != nil {
		t.Fatal(cheatErr)
	}
}

// flagWatch polls auth1's consensus and records when it first lists fp
// BadCompute.
type flagWatch struct {
	mu      sync.Mutex
	flagged time.Time
}

func (w *flagWatch) at() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.flagged
}

func watchBadCompute(ctx context.Context, n *Network, fp keys.Fingerprint) *flagWatch {
	w := &flagWatch{}
	go func() {
		for ctx.Err() == nil {
			if c, err := authorityConsensus(ctx, n); err == nil {
				if r := c.Relay(fp); r != nil && r.HasFlag(directory.FlagBadCompute) {
					w.mu.Lock()
					w.flagged = time.Now()
					w.mu.Unlock()
					return
				}
			}
			waitCtx(ctx, 200*time.Millisecond)
		}
	}()
	return w
}

// waitVerifierListed waits until auth1's consensus lists v1 Running, then
// one interval more for the client to fetch it: before that the client
// does not audit (spec/11 §3.3: no verifier is listed).
func waitVerifierListed(ctx context.Context, t testing.TB, n *Network) {
	t.Helper()
	fp, err := keys.ParseFingerprint(n.Node("v1").Fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	for ctx.Err() == nil {
		if c, err := authorityConsensus(ctx, n); err == nil {
			if r := c.Relay(fp); r != nil && r.HasFlag(directory.FlagRunning) && r.HasRole(directory.RoleVerifier) {
				waitCtx(ctx, n.Spec.Interval+time.Second)
				return
			}
		}
		waitCtx(ctx, 200*time.Millisecond)
	}
	t.Fatal("the verifier was never listed")
}

// completeUntilFlagged runs greedy completions of tokens until watch sees
// the cheater flagged, pausing between them, and returns how many ran, how
// many of their circuits went through the cheater, and when the first did.
// When ctx ends or giveUp says so it calls diagnose and fails the test.
func completeUntilFlagged(ctx context.Context, t *testing.T, n *Network, api, cheater string, tokens int, watch *flagWatch,
	pause time.Duration, giveUp func(runs, through int) bool, diagnose func()) (runs, through int, firstUse time.Time) {
	t.Helper()
	for watch.at().IsZero() {
		if ctx.Err() != nil || giveUp(runs, through) {
			diagnose()
			t.Fatalf("not flagged after %d completions, %d through the cheater", runs, through)
		}
		// A completion through the cheater is wrong: only the audit can
		// tell, the client's checks pass.
		if _, err := complete(ctx, api, e2ePrompt, tokens); err != nil {
			t.Fatal(err)
		}
		runs++
		circs, err := ClientCircuits(ctx, n)
		if err != nil || len(circs) == 0 {
			t.Fatalf("client circuits: %v", err)
		}
		if usesRelay(circs[len(circs)-1], cheater) {
			through++
			if firstUse.IsZero() {
				firstUse = time.Now()
			}
		}
		waitCtx(ctx, pause)
	}
	return runs, through, firstUse
}

func usesRelay(hops []CircuitHop, fp string) bool {
	return slices.ContainsFunc(hops, func(h CircuitHop) bool { return h.Fingerprint == fp })
}

// TestCheatingRelayFlagged (issue 17): one compute relay of a real-process
// testnet runs the fault-injection build and corrupts every output it
// computes (signing what it sends, so the client's chain checks pass). The
// client audits a quarter of the steps, gathers the inputs, and submits
// tickets over separate circuits to the verifier, which re-executes them,
// confirms the fraud on the portable path and sends the proof to every
// authority. The consensus flags the cheater BadCompute within two
// consensus intervals of the first completion through it; later circuits
// avoid it and their completions equal local greedy decoding.
func TestCheatingRelayFlagged(t *testing.T) {
	buildCheat(t)
	interval := 4 * time.Second
	n := startNetworkPatched(t, Spec{Mode: "anonymous", Replicas: 2, Verifiers: 1, VerifyFraction: 250,
		TicketDelay: -1, Cheater: "s1-1", CheatFraction: 1, Interval: interval}, func(node *Node, cfg map[string]any) {
		if node.Role == "verifier" {
			section(cfg, "log")["level"] = "debug" // logs each ticket it queues
		}
	})
	api, _, _ := n.ClientAddrs()
	cheater := n.Node("s1-1").Fingerprint
	fp, err := keys.ParseFingerprint(cheater)
	if err != nil {
		t.Fatal(err)
	}
	const tokens = 16
	want := localGreedy(t, n.Spec.Model, e2ePrompt, tokens)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	waitVerifierListed(ctx, t, n)
	watch := watchBadCompute(ctx, n, fp)

	runs, through, firstUse := completeUntilFlagged(ctx, t, n, api, cheater, tokens, watch, 250*time.Millisecond,
		func(runs, through int) bool { return through > 40 }, // unaudited 40 times: (3/4)^40 < 1e-5
		func() {
			if c, err := authorityConsensus(ctx, n); err == nil {
				if r := c.Relay(fp); r != nil {
					t.Logf("consensus method %d, cheater's flags %v", c.Method, r.Flags)
				}
			}
		})
	// From the first ticket of the cheater's sessions (an audited one) to
	// the consensus that flags it.
	st, err := openStore(n.Node("s1-1"))
	if err != nil {
		t.Fatal(err)
	}
	ticketAt := firstTicket(t, n.Node("v1"), st.Identity().Public)
	took := watch.at().Sub(ticketAt)
	t.Logf("flagged BadCompute %.1f s (%.2f intervals) after the verifier got the first ticket against it; %d completions, %d through the cheater (first flagged %.1f s after the first)",
		took.Seconds(), took.Seconds()/interval.Seconds(), runs, through, watch.at().Sub(firstUse).Seconds())
	if took > 2*interval {
		t.Errorf("flagged %v after the first ticket against the cheater, want within two intervals (%v)", took, 2*interval)
	}
	// The client learns the flag with its next consensus; from then on no
	// circuit uses the cheater, and completions are right.
	waitCtx(ctx, interval+time.Second)
	for i := range 4 {
		got, err := complete(ctx, api, e2ePrompt, tokens)
		if err != nil {
			t.Fatal(err)
		}
		circs, err := ClientCircuits(ctx, n)
		if err != nil || len(circs) == 0 {
			t.Fatalf("client circuits: %v", err)
		}
		if usesRelay(circs[len(circs)-1], cheater) {
			t.Fatalf("completion %d after the flag went through the cheater", i)
		}
		if got != want {
			t.Fatalf("completion %d after the flag differs from local:\ncircuit: %q\nlocal:   %q", i, got, want)
		}
	}
	// No false positive: the honest compute relays, audited as often, are
	// not flagged, and the verifier judged tickets honest.
	c, err := authorityConsensus(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range c.Relays {
		if r.HasFlag(directory.FlagBadCompute) && r.Fingerprint.String() != cheater {
			t.Errorf("honest relay %s flagged BadCompute", r.Nickname)
		}
	}
	b, err := os.ReadFile(filepath.Join(n.Node("v1").Dir, "stderr.log"))
	if err != nil {
		t.Fatal(err)
	}
	honest := strings.Count(string(b), `msg="ticket checked" prog=unfed-relay verdict=honest`)
	if honest == 0 {
		t.Error("the verifier judged no ticket honest")
	}
	t.Logf("the verifier judged %d tickets honest", honest)
}

// firstTicket is when the verifier logged its first ticket of signer.
func firstTicket(t *testing.T, v *Node, signer []byte) time.Time {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(v.Dir, "stderr.log"))
	if err != nil {
		t.Fatal(err)
	}
	sig := "signer=" + hex.EncodeToString(signer[:8])
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.Contains(l, `msg="ticket queued"`) || !strings.Contains(l, sig) {
			continue
		}
		ts, ok := strings.CutPrefix(strings.Fields(l)[0], "time=")
		at, err := time.Parse(time.RFC3339Nano, ts)
		if !ok || err != nil {
			t.Fatalf("verifier log line %q: %v", l, err)
		}
		return at
	}
	t.Fatal("the verifier logged no ticket of the cheater")
	return time.Time{}
}

// hopSession is one compute session as a relay's audit capture shows it:
// its nonce (from COMMIT_ON), the records before the first step, each
// step's records (every record canonical, viewOf) and committed positions,
// and the REVEALs it answered.
type hopSession struct {
	nonce  string
	head   []string
	steps  [][]string
	times  [][]time.Time // each step's records' times (the relay's capture clock)
	pos    [][2]int      // each step's start and count (its COMMIT)
	reveal [][2]int      // each REVEAL's start and count
}

// viewOf is what a hop sees of a record: its direction and bytes, except
// that SETUP, COMMIT_ON and COMMIT, which differ between sessions by the
// client's random edge keys and nonce (and the signature over it), count by
// type and size only.
func viewOf(r audit.Record) string {
	if t := hop.MsgType(r.Msg[0]); !r.Dir.Edge() && (t == hop.TypeSetup || t == hop.TypeCommitOn || t == hop.TypeCommit) {
		return fmt.Sprintf("%v %#02x %d bytes", r.Dir, r.Msg[0], len(r.Msg))
	}
	return fmt.Sprintf("%v %x", r.Dir, r.Msg)
}

// hopSessions cuts a relay's capture into compute sessions (they run one
// after another): a session starts with SETUP; a step's records end with
// the FINAL_HIDDEN sent (the last hop) or the ACTIVATIONS sent on with
// FINAL (others); REVEAL and REVEALED are set apart.
func hopSessions(t *testing.T, node *Node) []*hopSession {
	t.Helper()
	recs, err := audit.ReadCapture(captureFile(node))
	if errors.Is(err, audit.ErrTruncated) {
		// The relay is still running and may be writing its last record:
		// the complete ones before it are what it has recorded so far.
		err = nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []*hopSession
	var cur *hopSession
	var step []string
	var times []time.Time
	var pos [2]int
	for _, r := range recs {
		if len(r.Msg) == 0 {
			continue
		}
		typ := hop.MsgType(r.Msg[0])
		client := !r.Dir.Edge()
		if client && r.Dir == audit.FromClient && typ == hop.TypeSetup {
			cur = &hopSession{}
			out = append(out, cur)
			step, times = nil, nil
		}
		if cur == nil {
			continue
		}
		switch {
		case client && (typ == hop.TypeSetup || typ == hop.TypeSetupOK):
			cur.head = append(cur.head, viewOf(r))
			continue
		case client && typ == hop.TypeCommitOn && len(r.Msg) == 33:
			cur.nonce = hex.EncodeToString(r.Msg[1:9])
			cur.head = append(cur.head, viewOf(r))
			continue
		case client && typ == hop.TypeReveal && len(r.Msg) == 9:
			cur.reveal = append(cur.reveal, [2]int{int(binary.BigEndian.Uint32(r.Msg[1:])), int(binary.BigEndian.Uint32(r.Msg[5:]))})
			continue
		case client && typ == hop.TypeRevealed:
			continue
		case client && typ == hop.TypeCommit && len(r.Msg) > 9:
			pos = [2]int{int(binary.BigEndian.Uint32(r.Msg[1:])), int(binary.BigEndian.Uint32(r.Msg[5:]))}
		}
		step = append(step, viewOf(r))
		times = append(times, r.Time)
		if (r.Dir == audit.ToClient && typ == hop.TypeFinal) ||
			(r.Dir == audit.ToEdge && len(r.Msg) > 14 && r.Msg[14]&1 != 0) { // ACTIVATIONS with FINAL (03-compute §4.2)
			cur.steps = append(cur.steps, step)
			cur.times = append(cur.times, times)
			cur.pos = append(cur.pos, pos)
			step, times = nil, nil
		}
	}
	// Sessions without COMMIT_ON are the authorities' weight measurements.
	return slices.DeleteFunc(out, func(s *hopSession) bool { return s.nonce == "" })
}

// auditedSteps reads from the verifier's log which steps of signer it
// received tickets for: nonce prefix (hex) → the steps' starts.
func auditedSteps(t *testing.T, v *Node, signer []byte) map[string][]int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(v.Dir, "stderr.log"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]int{}
	sig := "signer=" + hex.EncodeToString(signer[:8])
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.Contains(l, `msg="ticket queued"`) || !strings.Contains(l, sig) {
			continue
		}
		var nonce string
		start := -1
		for _, f := range strings.Fields(l) {
			if v, ok := strings.CutPrefix(f, "nonce="); ok {
				nonce = v
			}
			if v, ok := strings.CutPrefix(f, "start="); ok {
				start, _ = strconv.Atoi(v)
			}
		}
		if nonce == "" || start < 0 {
			t.Fatalf("unparsed verifier log line %q", l)
		}
		out[nonce] = append(out[nonce], start)
	}
	return out
}

// TestAuditedStepsIndistinguishable (issue 17): in a real-process testnet
// whose client audits each hop of a session with probability 1/2, the
// checked hop's view — every message it receives and sends, byte for byte
// and in order, from its audit capture — of the steps of a session the
// verifier got a ticket for equals its view of the same steps in sessions
// that were not audited, and the checked hop never sees a REVEAL (its
// inputs come from the hop before it). Its timing class is the same too:
// the gaps between the records it sees (compareTiming) are distributed
// alike in audited and unaudited sessions. As a check that the capture shows
// what the comparison needs, the hop before it sees exactly one REVEAL per
// session, of the whole session when the next hop was audited and of
// position 0 alone when not: what would make the checked hop's view differ
// if a REVEAL reached it.
func TestAuditedStepsIndistinguishable(t *testing.T) {
	n := startNetworkPatched(t, Spec{Mode: "anonymous", Replicas: 1, Verifiers: 1, AuditCapture: true,
		AuditPerMille: 500, TicketDelay: -1}, func(node *Node, cfg map[string]any) {
		if node.Role == "verifier" {
			section(cfg, "log")["level"] = "debug"
		}
		if node.Kind == "dirauth" {
			// Weight measurements open compute sessions too: only the
			// first, before the client is ready (spec 04 §6.3).
			cfg["measure_every"] = 100000
		}
	})
	api, _, _ := n.ClientAddrs()
	last, prev := n.Node("s2-1"), n.Node("s1-1")
	st, err := openStore(last)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	waitVerifierListed(ctx, t, n)
	const tokens = 8
	// Sessions until 4 were audited and 4 not after the first (each is,
	// with probability 1/2), for the timing comparison; at most 40.
	// all: every session at the checked hop; ss: those of all tokens'
	// steps (a request that failed part-way, under load, and was retried
	// on another circuit leaves a shorter session, which is not compared).
	var all, ss []*hopSession
	var audited map[string][]int
	auditedOf := func(s *hopSession) bool { return len(audited[s.nonce]) > 0 }
	short := func(s *hopSession) bool { return len(s.steps) != tokens }
	for done := 0; done < 40; done++ {
		if _, err := complete(ctx, api, e2ePrompt, tokens); err != nil {
			t.Fatal(err)
		}
		// The session's REVEALs, tickets (ticket_delay < 0) and teardown
		// follow the answer.
		waitCtx(ctx, 700*time.Millisecond)
		all = hopSessions(t, last)
		ss = slices.DeleteFunc(slices.Clone(all), short)
		audited = auditedSteps(t, n.Node("v1"), st.Identity().Public)
		yes := 0
		for _, s := range ss[min(1, len(ss)):] {
			if auditedOf(s) {
				yes++
			}
		}
		if yes >= 4 && len(ss)-1-yes >= 4 {
			break
		}
	}
	if len(ss) < 3 {
		t.Fatalf("%d sessions of %d steps at %s", len(ss), tokens, last.Name)
	}
	if d := len(all) - len(ss); d > 0 {
		t.Logf("%d sessions at %s ended early (a request retried) and are not compared", d, last.Name)
	}
	ref := ss[0]
	yes := 0
	for _, s := range ss {
		if !slices.Equal(s.head, ref.head) || !slices.Equal(s.pos, ref.pos) {
			t.Fatalf("sessions at %s differ before their steps or in their steps' positions:\n%v %v\n%v %v", last.Name, s.head, s.pos, ref.head, ref.pos)
		}
		if len(s.reveal) != 0 {
			t.Fatalf("the checked hop received %d REVEALs", len(s.reveal))
		}
		for k := range ref.steps {
			if !slices.Equal(s.steps[k], ref.steps[k]) {
				t.Fatalf("step %d: the checked hop's view differs between sessions", k)
			}
		}
		if auditedOf(s) {
			yes++
		}
	}
	t.Logf("%d sessions of %d steps at the checked hop, %d audited (a whole-session ticket each), all seen identically",
		len(ss), len(ref.steps), yes)
	if yes == 0 || yes == len(ss) {
		t.Fatal("no session was audited and another not: nothing was compared")
	}
	// The first session warms the relays' caches and allocations: its
	// gaps are longer whatever its draw, so it is left out of the timing.
	compareTiming(t, ss[1:], auditedOf)
	ps := hopSessions(t, prev)
	if len(ps) != len(all) {
		t.Fatalf("%d sessions at %s, %d at %s", len(ps), prev.Name, len(all), last.Name)
	}
	lastStep := ref.pos[len(ref.pos)-1]
	for i, s := range ps {
		if short(all[i]) {
			continue
		}
		want := 1
		if auditedOf(all[i]) {
			want = lastStep[0] + lastStep[1]
		}
		if len(s.reveal) != 1 || s.reveal[0] != [2]int{0, want} {
			t.Fatalf("session %d: %s got REVEALs %v, want one of [0,%d)", i, prev.Name, s.reveal, want)
		}
	}
}

// sessionsOf returns the steps of each committed session of node (from its
// audit capture), in order, by nonce prefix, and the nonces in order.
func sessionsOf(t *testing.T, node *Node) (map[string]int, []string) {
	t.Helper()
	steps := map[string]int{}
	var order []string
	for _, s := range hopSessions(t, node) {
		steps[s.nonce] = len(s.steps)
		order = append(order, s.nonce)
	}
	return steps, order
}

// verdicts reads the verifier's log: the nonce prefixes of signer's
// sessions it judged honest and those it sent a fraud proof for.
func verdicts(t *testing.T, v *Node, signer []byte) (honest, fraud []string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(v.Dir, "stderr.log"))
	if err != nil {
		t.Fatal(err)
	}
	sig := "signer=" + hex.EncodeToString(signer[:8])
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.Contains(l, sig) {
			continue
		}
		var nonce string
		for _, f := range strings.Fields(l) {
			if v, ok := strings.CutPrefix(f, "nonce="); ok {
				nonce = v
			}
		}
		switch {
		case strings.Contains(l, `msg="ticket checked"`) && strings.Contains(l, "verdict=honest"):
			honest = append(honest, nonce)
		case strings.Contains(l, `msg="fraud: sending the proof`):
			fraud = append(fraud, nonce)
		}
	}
	return honest, fraud
}

func identityOf(t *testing.T, node *Node) []byte {
	t.Helper()
	st, err := openStore(node)
	if err != nil {
		t.Fatal(err)
	}
	return st.Identity().Public
}

// TestPartialCheaterDetected (issue 17, real processes): the first compute
// relay runs the fault-injection build corrupting each step with
// probability f = 0.1. To keep the run short the testnet's consensus
// raises verify-fraction to 250 per mille (p = 1/4 per session and hop,
// instead of the default 5%). Each of 3 runs starts a fresh network and
// completes prompts until the verifier sends a fraud proof against the
// cheater; the steps it computed until then (from its audit capture,
// cover steps included) are compared with the expectation for per-session
// draws, n/(p·(1 − (1 − f)^n)) for sessions of n steps. No run may take
// more than 60 sessions: the chance of that is (1 − p·(1 − 0.9^17))^60 <
// 1e-6. The honest relay is never proved to cheat.
func TestPartialCheaterDetected(t *testing.T) {
	buildCheat(t)
	const f, perMille, runs, maxSessions, tokens = 0.1, 250, 3, 60, 16
	p := float64(perMille) / 1000
	var stepsTo, sessionsTo []int
	stepsPer := 0.0
	for run := range runs {
		t.Run(fmt.Sprint(run), func(t *testing.T) {
			n := startNetworkPatched(t, Spec{Mode: "anonymous", Replicas: 1, Verifiers: 1, VerifyFraction: perMille,
				TicketDelay: -1, Cheater: "s1-1", CheatFraction: f, AuditCapture: true}, func(node *Node, cfg map[string]any) {
				if node.Role == "verifier" {
					section(cfg, "log")["level"] = "debug"
				}
				if node.Kind == "dirauth" {
					cfg["measure_every"] = 100000 // sessions at the cheater are the client's
				}
			})
			api, _, _ := n.ClientAddrs()
			cheater, honest := n.Node("s1-1"), n.Node("s2-1")
			cheaterID, honestID := identityOf(t, cheater), identityOf(t, honest)
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			defer cancel()
			waitVerifierListed(ctx, t, n)
			for s := 0; ; s++ {
				if s == maxSessions {
					t.Fatalf("no fraud proof after %d sessions", s)
				}
				if _, err := complete(ctx, api, e2ePrompt, tokens); err != nil {
					t.Fatal(err)
				}
				// The REVEALs, the tickets (ticket_delay < 0) and their
				// re-execution follow the answer.
				waitCtx(ctx, 700*time.Millisecond)
				if _, fraud := verdicts(t, n.Node("v1"), cheaterID); len(fraud) > 0 {
					break
				}
			}
			if _, fraud := verdicts(t, n.Node("v1"), honestID); len(fraud) > 0 {
				t.Fatalf("the honest relay was proved to cheat in sessions %v", fraud)
			}
			_, fraud := verdicts(t, n.Node("v1"), cheaterID)
			steps, order := sessionsOf(t, cheater)
			total := 0
			for i, nonce := range order {
				total += steps[nonce]
				if nonce == fraud[0] {
					stepsTo, sessionsTo = append(stepsTo, total), append(sessionsTo, i+1)
					stepsPer += float64(total) / float64(i+1)
					t.Logf("run %d: fraud proved after %d steps in %d sessions", run, total, i+1)
					return
				}
			}
			t.Fatalf("the proved session %s is not in the cheater's capture (%d sessions)", fraud[0], len(order))
		})
	}
	if len(stepsTo) < runs {
		return
	}
	nPer := stepsPer / runs
	perSession := p * (1 - math.Pow(1-f, nPer))
	sum := 0
	for _, s := range stepsTo {
		sum += s
	}
	t.Logf("f=%.2f p=%.2f (per session), %.1f steps per session: steps to detection %v (sessions %v), mean %.0f; expected n/(p·(1−(1−f)^n)) = %.0f; per-step draws would give 1/(p·f) = %.0f, (1−p)^(f·N) = 0.5 at N = %.0f",
		f, p, nPer, stepsTo, sessionsTo, float64(sum)/runs, nPer/perSession, 1/(p*f), math.Log(0.5)/(f*math.Log(1-p)))
}

// TestHonestNeverFlagged (issue 17, real processes): with honest relays,
// every session of every compute hop audited (verify-fraction 1000) and
// the verifier re-executing on the portable Go kernels only
// (verifier.portable), at least 500 steps of each compute relay are
// checked and none is judged fraud; no relay is flagged BadCompute.
func TestHonestNeverFlagged(t *testing.T) {
	const tokens, minSteps = 32, 500
	n := startNetworkPatched(t, Spec{Mode: "anonymous", Replicas: 1, Verifiers: 1, VerifyFraction: 1000,
		TicketDelay: -1, AuditCapture: true}, func(node *Node, cfg map[string]any) {
		if node.Role == "verifier" {
			section(cfg, "log")["level"] = "debug"
			section(cfg, "verifier")["portable"] = true
		}
		if node.Kind == "dirauth" {
			cfg["measure_every"] = 100000
		}
	})
	api, _, _ := n.ClientAddrs()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	waitVerifierListed(ctx, t, n)
	hops := []*Node{n.Node("s1-1"), n.Node("s2-1")}
	checked := func(h *Node) (int, int) {
		honest, fraud := verdicts(t, n.Node("v1"), identityOf(t, h))
		steps, _ := sessionsOf(t, h)
		total := 0
		for _, nonce := range honest {
			total += steps[nonce]
		}
		return total, len(fraud)
	}
	for done := false; !done; {
		if ctx.Err() != nil {
			t.Fatal("ran out of time")
		}
		if _, err := complete(ctx, api, e2ePrompt, tokens); err != nil {
			t.Fatal(err)
		}
		done = true
		for _, h := range hops {
			if s, _ := checked(h); s < minSteps {
				done = false
			}
		}
		if !done {
			continue
		}
		// Let the verifier finish the queued tickets.
		waitCtx(ctx, 2*time.Second)
	}
	for _, h := range hops {
		s, fraud := checked(h)
		if fraud != 0 {
			t.Fatalf("%s, honest, was judged fraud %d times", h.Name, fraud)
		}
		t.Logf("%s: %d steps checked on the portable path, all honest", h.Name, s)
	}
	b, err := os.ReadFile(filepath.Join(n.Node("v1").Dir, "stderr.log"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "fraud:") || strings.Contains(string(b), "disagree") {
		t.Fatal("the verifier logged a fraud or a disagreement")
	}
	if !strings.Contains(string(b), "portable=true") {
		t.Fatal("the verifier did not run on the portable path")
	}
	c, err := authorityConsensus(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range c.Relays {
		if r.HasFlag(directory.FlagBadCompute) {
			t.Errorf("honest relay %s flagged BadCompute", r.Nickname)
		}
	}
}

// gapsOf returns the gaps between consecutive records the hop saw in
// session s (the relay's capture clock), by kind: the j-th gap inside the
// prompt step or inside a decode step (the hop's own work: input, COMMIT,
// output), and the gap between a step's last record and the next step's
// first (the round trip through the client and the hops before it).
func gapsOf(t *testing.T, s *hopSession) map[string][]time.Duration {
	t.Helper()
	out := map[string][]time.Duration{}
	for k, ts := range s.times {
		kind := "decode"
		if k == 0 {
			kind = "prompt"
		}
		for j, at := range ts {
			if at.IsZero() {
				t.Fatal("the capture's records carry no time")
			}
			if j > 0 {
				out[fmt.Sprintf("%s gap %d", kind, j)] = append(out[fmt.Sprintf("%s gap %d", kind, j)], at.Sub(ts[j-1]))
			}
		}
		if k > 0 {
			prev := s.times[k-1]
			out["between steps"] = append(out["between steps"], ts[0].Sub(prev[len(prev)-1]))
		}
	}
	return out
}

// rankZ is the Mann–Whitney rank-sum statistic of a against b as a
// z-score (normal approximation, ties corrected). When a and b are
// independent draws from one distribution |z| exceeds 4 with probability
// below 1e-4, whatever the distribution: no timing threshold, only ranks.
func rankZ(a, b []time.Duration) float64 {
	type obs struct {
		d     time.Duration
		fromA bool
	}
	var all []obs
	for _, d := range a {
		all = append(all, obs{d, true})
	}
	for _, d := range b {
		all = append(all, obs{d, false})
	}
	slices.SortFunc(all, func(x, y obs) int { return cmp.Compare(x.d, y.d) })
	n1, n2, n := float64(len(a)), float64(len(b)), float64(len(all))
	var ra, ties float64
	for i := 0; i < len(all); {
		j := i
		for j < len(all) && all[j].d == all[i].d {
			j++
		}
		rank := float64(i+j+1) / 2 // ranks i+1..j, averaged
		for k := i; k < j; k++ {
			if all[k].fromA {
				ra += rank
			}
		}
		tn := float64(j - i)
		ties += tn*tn*tn - tn
		i = j
	}
	u := ra - n1*(n1+1)/2
	sigma2 := n1 * n2 / 12 * ((n + 1) - ties/(n*(n-1)))
	if sigma2 <= 0 {
		return 0
	}
	return (u - n1*n2/2) / math.Sqrt(sigma2)
}

// compareTiming checks the checked hop's timing class: for each kind of gap
// (gapsOf) with at least 8 samples on each side, audited and unaudited
// sessions' gaps must not differ by rank (|z| ≤ 5: the gaps of one session
// share the machine's load of the moment, so they are not independent
// and |z| spreads wider than for independent draws; 2.6 was seen). So
// that the comparison is known to see a difference, it must also flag
// (z > 5) the audited sessions' gaps between steps delayed by ten times
// their median, a stand-in for a client that would, say, fetch a REVEAL
// between the steps of an audited session.
func compareTiming(t *testing.T, ss []*hopSession, audited func(*hopSession) bool) {
	t.Helper()
	yes, no := map[string][]time.Duration{}, map[string][]time.Duration{}
	for _, s := range ss {
		dst := no
		if audited(s) {
			dst = yes
		}
		for k, g := range gapsOf(t, s) {
			dst[k] = append(dst[k], g...)
		}
	}
	compared := 0
	for _, k := range slices.Sorted(maps.Keys(yes)) {
		a, b := yes[k], no[k]
		if len(a) < 8 || len(b) < 8 {
			continue
		}
		z := rankZ(a, b)
		t.Logf("timing, %s: median %v audited (%d), %v not (%d), rank z = %.2f", k, median(a), len(a), median(b), len(b), z)
		if math.Abs(z) > 5 {
			t.Errorf("timing, %s: audited sessions' gaps differ from the others' (z = %.2f)", k, z)
		}
		compared++
	}
	if compared == 0 {
		t.Fatal("no gap kind had enough samples to compare")
	}
	a, b := yes["between steps"], no["between steps"]
	if len(a) < 8 || len(b) < 8 {
		t.Fatalf("%d and %d gaps between steps", len(a), len(b))
	}
	delay := 10 * median(append(slices.Clone(a), b...))
	slow := make([]time.Duration, len(a))
	for i, g := range a {
		slow[i] = g + delay
	}
	if z := rankZ(slow, b); z <= 5 {
		t.Fatalf("the timing comparison does not see audited steps delayed by %v (z = %.2f)", delay, z)
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Sorted(slices.Values(ds))
	return s[len(s)/2]
}

// TestRankZ: the rank statistic is near 0 for samples of one distribution,
// large and of a's sign when a is shifted past b, and 0 for all-equal
// samples.
func TestRankZ(t *testing.T) {
	var a, b []time.Duration
	for i := range 40 {
		a = append(a, time.Duration(i*7%40)*time.Millisecond)
		b = append(b, time.Duration((i*11+3)%40)*time.Millisecond)
	}
	if z := rankZ(a, b); math.Abs(z) > 1 {
		t.Fatalf("same values: z = %.2f", z)
	}
	late := make([]time.Duration, len(a))
	for i, d := range a {
		late[i] = d + time.Second
	}
	if z := rankZ(late, b); z < 7 {
		t.Fatalf("a shifted past b: z = %.2f", z)
	}
	if z := rankZ(b, late); z > -7 {
		t.Fatalf("b before a: z = %.2f", z)
	}
	same := []time.Duration{5, 5, 5, 5}
	if z := rankZ(same, same); z != 0 {
		t.Fatalf("all equal: z = %.2f", z)
	}
}
