package audit

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"testing"
)

// toRequests writes each relay's records to its own capture file, one group
// per request, reads the files back and splits them at the sizes noted
// after each request, as the audit harness does.

// baselineBound is the share of prompt tokens an attack may get right on
// random data (the baselines): chance plus hubness (random vectors sit
// nearest a few embedding rows, and prompts repeat frequent tokens), seen
// up to 2/71 (2.8 %) in CI. Above it the attack would be finding structure
// in noise. The bound on real data stays 2 %.
const baselineBound = 0.05

func toRequests(t *testing.T, inputs, gens [][]int, recs []map[string][]Record) []Request {
	t.Helper()
	dir := t.TempDir()
	names := map[string]bool{}
	for _, r := range recs {
		for n := range r {
			names[n] = true
		}
	}
	reqs := make([]Request, len(inputs))
	for i := range reqs {
		reqs[i] = Request{Prompt: fmt.Sprint("prompt ", i), Input: inputs[i], Skip: 1, Generated: gens[i]}
	}
	var sorted []string
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	for _, n := range sorted {
		groups := make([][]Record, len(recs))
		for i, r := range recs {
			groups[i] = r[n]
		}
		path, ends := captureFile(t, dir, n+".log", groups)
		all, err := ReadCapture(path)
		if err != nil {
			t.Fatal(err)
		}
		for i, g := range split(all, ends) {
			if _, ok := recs[i][n]; ok {
				reqs[i].Captures = append(reqs[i].Captures, Capture{Relay: n, Records: g})
			}
		}
	}
	return reqs
}

func byRole(t *testing.T, rep *Report) map[string]*Result {
	t.Helper()
	out := map[string]*Result{}
	for _, r := range rep.Results {
		out[r.Role] = r
	}
	return out
}

// checkLines checks the machine-readable lines against the results.
func checkLines(t *testing.T, rep *Report) string {
	t.Helper()
	var b bytes.Buffer
	if err := rep.WriteLines(&b); err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Results {
		want := fmt.Sprintf("audit mode=%s role=%s recovered=%d total=%d generated=%d/%d ", rep.Mode, r.Role,
			r.Recovered, r.Total, r.GenRecovered, r.GenTotal)
		if !strings.Contains(b.String(), "\n"+want) && !strings.HasPrefix(b.String(), want) {
			t.Errorf("no line %q in\n%s", want, b.String())
		}
		for _, base := range Baselines {
			bt := r.Baseline[base]
			want := fmt.Sprintf("audit mode=%s role=%s baseline=%s recovered=%d total=%d generated=%d/%d\n", rep.Mode, r.Role,
				base, bt.Recovered, bt.Total, bt.GenRecovered, bt.GenTotal)
			if !strings.Contains(b.String(), want) {
				t.Errorf("no line %q in\n%s", want, b.String())
			}
		}
	}
	var tb bytes.Buffer
	if err := rep.WriteTable(&tb); err != nil {
		t.Fatal(err)
	}
	return b.String() + tb.String()
}

// TestAnalyzeAnonymous: through an anonymous circuit guard → s0 [0, 2) →
// s1 [2, 5), s0 reads every prompt token and every generated token fed
// back, s1 inverts every prompt token from its input and learns every
// generated token from its LOGITS, and the guard sees nothing; the
// baselines are at chance.
func TestAnalyzeAnonymous(t *testing.T) {
	m, tok, path := testModel(t)
	const gen = 5
	var inputs, gens [][]int
	var recs []map[string][]Record
	for i, p := range promptIDs(tok, []string{Prompts[0], Prompts[1], Prompts[4]}) {
		g, r := anonymousRequest(t, m, path, p, gen, 2, i%2 == 0)
		inputs, gens, recs = append(inputs, p), append(gens, g), append(recs, r)
	}
	reqs := toRequests(t, inputs, gens, recs)
	rep, err := Analyze(m, reqs, Options{Mode: "anonymous", Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + checkLines(t, rep))
	total := 0
	for _, p := range inputs {
		total += len(p) - 1
	}
	genTotal := gen * len(inputs)
	roles := byRole(t, rep)
	if len(rep.Results) != 3 || roles["guard"] == nil || roles["s0"] == nil || roles["s1"] == nil {
		t.Fatalf("roles %v", rep.Results)
	}
	want := map[string][2]int{
		"guard": {0, 0},
		"s0":    {total, genTotal - len(inputs)}, // every generated token but the last is fed back as TOKENS
		"s1":    {total, genTotal},               // LOGITS carry every generated token
	}
	for role, w := range want {
		r := roles[role]
		if r.Recovered != w[0] || r.Total != total || r.GenRecovered != w[1] || r.GenTotal != genTotal {
			t.Errorf("%s: recovered %d/%d generated %d/%d, want %d/%d and %d/%d", role, r.Recovered, r.Total,
				r.GenRecovered, r.GenTotal, w[0], total, w[1], genTotal)
		}
		if r.Requests != len(inputs) || r.Undecodable != 0 {
			t.Errorf("%s: in %d requests, %d undecodable records", role, r.Requests, r.Undecodable)
		}
		for _, b := range Baselines {
			bt := r.Baseline[b]
			if ratio(bt.Recovered, total) > baselineBound || bt.GenRecovered > 1 {
				t.Errorf("%s %s baseline: recovered %d/%d generated %d/%d", role, b, bt.Recovered, total, bt.GenRecovered, genTotal)
			}
		}
	}
	if s1 := roles["s1"]; s1.First != 2 || s1.Last != 5 || s1.Best != "invert@2:activations" || s1.Relays[0] != "relay-s1" {
		t.Errorf("s1: layers [%d,%d), best %q, relays %v", s1.First, s1.Last, s1.Best, s1.Relays)
	}
	if roles["guard"].Vectors != 0 {
		t.Errorf("the guard attacked %d vectors", roles["guard"].Vectors)
	}
}

// TestAnalyzeConfidential runs prompts through a real confidential circuit
// of two stages, [0, 2) and [2, 5), and checks that no role recovers more
// than chance from what it saw, like the baselines. The same circuit with a
// planted leak (party A of stage 1 recording the input in the clear in its
// MPC_INPUT or in a peer message, or party A of stage 2 recording both
// halves of the residual stream) must be caught: the analysis is only worth
// its zeros if it finds such a leak.
func TestAnalyzeConfidential(t *testing.T) {
	m, tok, path := testModel(t)
	c := newConfidential(t, path, [][2]int{{0, 2}, {2, 5}})
	const gen = 3
	prompts := promptIDs(tok, []string{Prompts[1], Prompts[10]})
	run := func(lk leak, prompts [][]int) (*Report, int, int) {
		var inputs, gens [][]int
		var recs []map[string][]Record
		for _, p := range prompts {
			g, r := c.request(t, p, gen, lk)
			inputs, gens, recs = append(inputs, p), append(gens, g), append(recs, r)
		}
		rep, err := Analyze(m, toRequests(t, inputs, gens, recs), Options{Mode: "confidential", Seed: 2})
		if err != nil {
			t.Fatal(err)
		}
		total := 0
		for _, p := range inputs {
			total += len(p) - 1
		}
		return rep, total, gen * len(inputs)
	}

	rep, total, genTotal := run(noLeak, prompts)
	t.Log("\n" + checkLines(t, rep))
	roles := byRole(t, rep)
	for _, name := range []string{"guard", "d1", "a1", "b1", "d2", "a2", "b2"} {
		r := roles[name]
		if r == nil {
			t.Fatalf("no role %s in %v", name, rep.Results)
		}
		if r.Total != total || r.GenTotal != genTotal {
			t.Errorf("%s: totals %d, %d", name, r.Total, r.GenTotal)
		}
		if ratio(r.Recovered, total) > 0.02 || r.GenRecovered > 1 || r.Undecodable != 0 {
			t.Errorf("%s: recovered %d/%d generated %d/%d, %d undecodable", name, r.Recovered, total, r.GenRecovered, genTotal, r.Undecodable)
		}
		for _, b := range Baselines {
			if bt := r.Baseline[b]; ratio(bt.Recovered, total) > baselineBound {
				t.Errorf("%s %s baseline: %d/%d", name, b, bt.Recovered, total)
			}
		}
	}
	// Parties see shares and openings; dealers see no vector at all.
	for _, name := range []string{"a1", "b1", "a2", "b2"} {
		if roles[name].Vectors < 100*total {
			t.Errorf("%s: only %d vectors attacked", name, roles[name].Vectors)
		}
	}
	if roles["d1"].Vectors != 0 || roles["d1"].Messages["in DEAL"] == 0 || roles["d1"].Messages["out MPC_PREP"] == 0 {
		t.Errorf("d1: %d vectors, messages %v", roles["d1"].Vectors, roles["d1"].Messages)
	}
	if roles["a2"].First != 2 || !strings.HasPrefix(roles["a2"].Best, "") {
		t.Errorf("a2: first layer %d", roles["a2"].First)
	}

	for _, c := range []struct {
		lk   leak
		role string
	}{{leakInput, "a1"}, {leakReshare, "a2"}, {leakPeer, "a1"}} {
		rep, total, _ := run(c.lk, prompts[:1])
		r := byRole(t, rep)[c.role]
		t.Logf("planted leak at %s: recovered %d/%d, best source %s (%d)", c.role, r.Recovered, total, r.Best, r.BestCount)
		if ratio(r.Recovered, total) < 0.95 {
			t.Errorf("a planted leak at %s: only %d/%d recovered", c.role, r.Recovered, total)
		}
		for _, b := range Baselines {
			if bt := r.Baseline[b]; ratio(bt.Recovered, total) > baselineBound {
				t.Errorf("%s %s baseline with the leak: %d/%d", c.role, b, bt.Recovered, total)
			}
		}
		for _, other := range rep.Results {
			if other.Role != c.role && ratio(other.Recovered, total) > 0.02 {
				t.Errorf("%s recovered %d/%d though the leak was at %s", other.Role, other.Recovered, total, c.role)
			}
		}
	}
}
