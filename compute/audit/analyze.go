package audit

import (
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
)

// Request is one prompt the audit sent and what every relay captured while
// it ran.
type Request struct {
	// Prompt is the prompt text, for the report.
	Prompt string
	// Input is what the client fed at positions 0 … len(Input)−1: BOS
	// (when the tokenizer adds one) and the prompt's tokens.
	Input []int
	// Skip is the number of leading positions that are not secret and not
	// scored (1 for BOS).
	Skip int
	// Generated are the tokens the circuit generated, in order, as far as
	// the audit knows them; generated token j was fed back at position
	// len(Input)+j (all but the last, unless generation ended on a stop
	// token).
	Generated []int
	// Captures holds one entry per relay that took part: the records it
	// wrote during this request.
	Captures []Capture
}

// Capture is the records one relay wrote during one request.
type Capture struct {
	Relay   string
	Records []Record
}

// Options tune Analyze.
type Options struct {
	// Mode labels the report: "anonymous" or "confidential".
	Mode string
	// Seed seeds the random data of the baselines.
	Seed uint64
	// Progress, if set, receives a line per request and role analysed.
	Progress io.Writer
}

// Baselines: the same attacks on random data of the observed shapes.
const (
	BaselineUniform  = "uniform"  // uniform 64-bit words read as fixed point at 2^16 (token ids: uniform ids)
	BaselineGaussian = "gaussian" // Gaussian values with the observed mean and standard deviation
)

// Baselines lists the baselines in report order.
var Baselines = []string{BaselineUniform, BaselineGaussian}

// Tally counts what one role recovered.
type Tally struct {
	// Recovered of Total prompt positions (BOS excluded) were recovered.
	Recovered, Total int
	// GenRecovered of GenTotal generated tokens were learned, from LOGITS
	// or from the input of a later position.
	GenRecovered, GenTotal int
	// Best is the single source (one attack on one kind of vector) that
	// recovered the most prompt positions, chosen in hindsight; an
	// attacker must commit to one guess per position, which Recovered
	// counts.
	Best      string
	BestCount int
	Vectors   int // values attacked: token ids, rows, vectors

	sources map[string]int // prompt positions recovered by each source
}

// Result is one role's outcome over every request.
type Result struct {
	Role        string // guard, s0, s1, … or d1, a1, b1, d2, …
	Kind        string // guard, compute, party-A, party-B, dealer
	First, Last int    // the layers the role serves (0, 0 for the guard)
	Relays      []string
	Requests    int // requests in which the role took part
	Tally
	Baseline map[string]*Tally
	// Messages counts captured records by direction and type.
	Messages map[string]int
	// Undecodable counts records that did not parse.
	Undecodable int
}

// Report is the outcome of Analyze.
type Report struct {
	Mode     string
	Vocab    int
	Requests int
	Results  []*Result
}

// Analyze runs every attack against what each role saw (see the package
// documentation) and scores the recovered tokens against the requests'
// true tokens.
func Analyze(m *Model, reqs []Request, opt Options) (*Report, error) {
	a := &analyzer{m: m, opt: opt, results: map[string]*Result{}}
	rep := &Report{Mode: opt.Mode, Vocab: m.cfg.Vocab, Requests: len(reqs)}
	total, genTotal := 0, 0
	for ri := range reqs {
		req := &reqs[ri]
		total += max(0, len(req.Input)-req.Skip)
		genTotal += len(req.Generated)
		if err := a.request(ri, req); err != nil {
			return nil, err
		}
	}
	for _, r := range a.results {
		for _, t := range append([]*Tally{&r.Tally}, baselineTallies(r)...) {
			t.Total, t.GenTotal = total, genTotal
		}
		sort.Strings(r.Relays)
		rep.Results = append(rep.Results, r)
	}
	sort.Slice(rep.Results, func(i, j int) bool { return roleLess(rep.Results[i], rep.Results[j]) })
	return rep, nil
}

func baselineTallies(r *Result) []*Tally {
	var out []*Tally
	for _, b := range Baselines {
		out = append(out, r.Baseline[b])
	}
	return out
}

type analyzer struct {
	m       *Model
	opt     Options
	results map[string]*Result
}

// group is the captures of one role in one request.
type group struct {
	name, kind  string
	first, last int
	relays      []string
	records     []Record
}

// roles assigns each capture its role from the SETUP it received.
func roles(caps []Capture) []*group {
	type member struct {
		c     *Capture
		setup *setupInfo
	}
	var ms []member
	var compute, stages []int
	for i := range caps {
		c := &caps[i]
		var s *setupInfo
		for _, r := range c.Records {
			if r.Dir == FromClient && len(r.Msg) > 0 && r.Msg[0] == typeSetup {
				if si, err := parseSetup(r.Msg); err == nil {
					s = &si
				}
				break
			}
		}
		ms = append(ms, member{c, s})
		if s != nil {
			if s.Role == roleCompute {
				compute = append(compute, s.First)
			} else {
				stages = append(stages, s.First)
			}
		}
	}
	compute, stages = uniqueSorted(compute), uniqueSorted(stages)
	byName := map[string]*group{}
	var out []*group
	for _, mb := range ms {
		g := &group{name: "guard", kind: "guard"}
		if s := mb.setup; s != nil {
			g.first, g.last = s.First, s.Last
			switch s.Role {
			case roleCompute:
				g.name, g.kind = fmt.Sprintf("s%d", indexOf(compute, s.First)), "compute"
			case rolePartyA:
				g.name, g.kind = fmt.Sprintf("a%d", indexOf(stages, s.First)+1), "party-A"
			case rolePartyB:
				g.name, g.kind = fmt.Sprintf("b%d", indexOf(stages, s.First)+1), "party-B"
			case roleDealer:
				g.name, g.kind = fmt.Sprintf("d%d", indexOf(stages, s.First)+1), "dealer"
			}
		}
		if prev := byName[g.name]; prev != nil {
			g = prev
		} else {
			byName[g.name] = g
			out = append(out, g)
		}
		g.relays = append(g.relays, mb.c.Relay)
		g.records = append(g.records, mb.c.Records...)
	}
	return out
}

func uniqueSorted(xs []int) []int {
	sort.Ints(xs)
	out := xs[:0]
	for i, x := range xs {
		if i == 0 || x != xs[i-1] {
			out = append(out, x)
		}
	}
	return out
}

func indexOf(xs []int, x int) int {
	for i, y := range xs {
		if y == x {
			return i
		}
	}
	return -1
}

// roleLess orders the guard first, then compute hops, then stages (dealer,
// A, B within a stage).
func roleLess(a, b *Result) bool {
	ka, kb := roleKey(a.Role), roleKey(b.Role)
	if ka != kb {
		return ka < kb
	}
	return a.Role < b.Role
}

func roleKey(name string) int {
	if name == "guard" {
		return -1
	}
	var n int
	fmt.Sscanf(name[1:], "%d", &n)
	switch name[0] {
	case 's':
		return n
	case 'd':
		return 10000 + 3*n
	case 'a':
		return 10000 + 3*n + 1
	case 'b':
		return 10000 + 3*n + 2
	}
	return 1 << 30
}

func (a *analyzer) result(g *group) *Result {
	r := a.results[g.name]
	if r == nil {
		r = &Result{Role: g.name, Kind: g.kind, First: g.first, Last: g.last, Messages: map[string]int{},
			Baseline: map[string]*Tally{}}
		for _, b := range Baselines {
			r.Baseline[b] = &Tally{}
		}
		a.results[g.name] = r
	}
	r.Requests++
	for _, rl := range g.relays {
		found := false
		for _, x := range r.Relays {
			found = found || x == rl
		}
		if !found {
			r.Relays = append(r.Relays, rl)
		}
	}
	return r
}

// request analyses every role of one request.
func (a *analyzer) request(ri int, req *Request) error {
	truth := append(append([]int(nil), req.Input...), req.Generated...)
	kps := map[int]*KnownPrefix{}
	for _, g := range roles(req.Captures) {
		res := a.result(g)
		v := newView(a.m.cfg.Dim, a.m.cfg.Vocab)
		for _, r := range g.records {
			v.add(r)
		}
		v.finish()
		for k, n := range v.counts {
			res.Messages[k] += n
		}
		res.Undecodable += v.bad
		// The known-prefix tables of the role's first layer, shared by the
		// roles and baselines of this request that need them.
		var kp *KnownPrefix
		if g.first > 0 && len(v.windows) > 0 {
			kp = kps[g.first]
			if kp == nil {
				need := 0
				for _, w := range v.windows {
					need = max(need, w.pos+1)
				}
				var err error
				if kp, err = NewKnownPrefix(a.m, g.first, truth[:min(need, len(truth))]); err != nil {
					return err
				}
				kps[g.first] = kp
			}
		}
		gs, err := a.attack(v, g.first, kp)
		if err != nil {
			return err
		}
		score(&res.Tally, req, gs)
		for bi, b := range Baselines {
			rng := rand.New(rand.NewPCG(a.opt.Seed, seedFor(ri, g.name, bi)))
			bgs, err := a.attack(v.randomized(b, rng), g.first, kp)
			if err != nil {
				return err
			}
			score(res.Baseline[b], req, bgs)
		}
		if a.opt.Progress != nil {
			fmt.Fprintf(a.opt.Progress, "audit: request %d role %s: %d vectors attacked\n", ri+1, g.name, gs.vectors)
		}
	}
	return nil
}

func seedFor(ri int, role string, baseline int) uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d/%s/%d", ri, role, baseline)
	return h.Sum64()
}

// guesses is what one attack run produced for one role and request.
type guesses struct {
	// pos is the attacker's one guess per input position.
	pos map[int]int
	// next is the token the role learned follows a position (LOGITS).
	next map[int]int
	// bySource holds each source's guesses by position.
	bySource map[string]map[int]int
	vectors  int
}

// attack runs the attacks that fit what the view holds: TOKENS are read,
// ACTIVATIONS are inverted at the role's first layer, LOGITS give their
// argmax, and every window is matched against the embedding and, when the
// first layer is above 0, against the known-prefix tables of that layer;
// the guess at a position is the nearest match over all windows and
// attacks there.
func (a *analyzer) attack(v *view, first int, kp *KnownPrefix) (*guesses, error) {
	gs := &guesses{pos: map[int]int{}, next: map[int]int{}, bySource: map[string]map[int]int{}}
	put := func(src string, p, id int) {
		m := gs.bySource[src]
		if m == nil {
			m = map[int]int{}
			gs.bySource[src] = m
		}
		m[p] = id
	}
	for p, id := range v.tokens {
		gs.pos[p] = id
		put("tokens", p, id)
		gs.vectors++
	}
	if rows := contiguous(v.acts); len(rows) > 0 {
		ids, err := Invert(a.m, first, rows)
		if err != nil {
			return nil, err
		}
		for p, id := range ids {
			if _, ok := gs.pos[p]; !ok {
				gs.pos[p] = id
			}
			put(fmt.Sprintf("invert@%d:activations", first), p, id)
		}
		gs.vectors += len(rows)
	}
	for p, id := range v.logits {
		gs.next[p] = id
		gs.vectors++
	}
	for _, p := range sortedKeys(v.finals) {
		// The public final norm and head turn a final hidden state into
		// the logits the client samples from.
		id, err := a.m.HeadArgmax(v.finals[p])
		if err != nil {
			return nil, err
		}
		if _, ok := gs.next[p]; !ok {
			gs.next[p] = id
		}
		gs.vectors++
	}
	if len(v.windows) > 0 {
		a.matchWindows(v.windows, first, kp, gs, put)
	}
	return gs, nil
}

// contiguous returns the rows at positions 0, 1, … up to the first missing
// one: Invert needs every position before the one it recovers.
func contiguous(rows map[int][]float32) [][]float32 {
	var out [][]float32
	for p := 0; ; p++ {
		r, ok := rows[p]
		if !ok {
			return out
		}
		out = append(out, r)
	}
}

// matchWindows attacks the windows position by position in parallel.
func (a *analyzer) matchWindows(ws []window, first int, kp *KnownPrefix, gs *guesses, put func(string, int, int)) {
	type span struct{ lo, hi int }
	var spans []span
	for i := 0; i < len(ws); {
		j := i
		for j < len(ws) && ws[j].pos == ws[i].pos {
			j++
		}
		spans = append(spans, span{i, j})
		i = j
	}
	type hit struct {
		src string
		id  int
	}
	type out struct {
		pos  int
		best int
		hits []hit
	}
	outs := make([]out, len(spans))
	var next sync.Mutex
	k := 0
	var wg sync.WaitGroup
	for range a.m.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				next.Lock()
				i := k
				k++
				next.Unlock()
				if i >= len(spans) {
					return
				}
				sp := spans[i]
				rows := make([][]float32, 0, sp.hi-sp.lo)
				for _, w := range ws[sp.lo:sp.hi] {
					rows = append(rows, w.row)
				}
				p := ws[sp.lo].pos
				o := out{pos: p, best: -1}
				bestRel := math.Inf(1)
				consider := func(attack string, ids []int, rel []float64) {
					for j, id := range ids {
						if id < 0 {
							continue
						}
						o.hits = append(o.hits, hit{attack + ":" + ws[sp.lo+j].src, id})
						if rel[j] < bestRel || o.best < 0 {
							o.best, bestRel = id, rel[j]
						}
					}
				}
				ids, rel := a.m.embd.nearest(rows)
				consider("nearest-embedding", ids, rel)
				if kp != nil && first > 0 {
					ids, rel := kp.Match(p, rows)
					consider(fmt.Sprintf("invert@%d", first), ids, rel)
				}
				outs[i] = o
			}
		}()
	}
	wg.Wait()
	for _, o := range outs {
		if o.best >= 0 {
			gs.pos[o.pos] = o.best
		}
		for _, h := range o.hits {
			put(sourceKind(h.src), o.pos, h.id)
		}
	}
	gs.vectors += len(ws)
}

// sourceKind keeps a window label's attack, kind and round, and drops the
// window index within a message: "invert@2:peer-in/r12/w3" becomes
// "invert@2:peer-in/r12#3".
func sourceKind(label string) string {
	i := strings.LastIndex(label, "/w")
	if i < 0 {
		return label
	}
	return label[:i] + "#" + label[i+2:]
}

// score adds one request's guesses to t.
func score(t *Tally, req *Request, gs *guesses) {
	n := len(req.Input)
	for p := req.Skip; p < n; p++ {
		if id, ok := gs.pos[p]; ok && id == req.Input[p] {
			t.Recovered++
		}
	}
	for j, want := range req.Generated {
		if id, ok := gs.next[n-1+j]; ok && id == want {
			t.GenRecovered++
		} else if id, ok := gs.pos[n+j]; ok && id == want {
			t.GenRecovered++
		}
	}
	t.Vectors += gs.vectors
	// The best single source over the requests so far.
	for src, m := range gs.bySource {
		c := 0
		for p := req.Skip; p < n; p++ {
			if id, ok := m[p]; ok && id == req.Input[p] {
				c++
			}
		}
		if t.sources == nil {
			t.sources = map[string]int{}
		}
		t.sources[src] += c
		if t.sources[src] > t.BestCount || (t.sources[src] == t.BestCount && (t.Best == "" || src < t.Best)) {
			t.Best, t.BestCount = src, t.sources[src]
		}
	}
}

// randomized returns a view of the same shape as v holding random data:
// uniform ids for token ids, and for every row, logit vector and window
// either uniform 64-bit words read as fixed point (BaselineUniform) or
// Gaussian values with the mean and standard deviation of the values of
// that kind the role saw (BaselineGaussian).
func (v *view) randomized(kind string, rng *rand.Rand) *view {
	r := newView(v.dim, v.vocab)
	for _, p := range sortedKeys(v.tokens) {
		r.tokens[p] = rng.IntN(v.vocab)
	}
	gen := func(n int, mean, std float64) []float32 {
		out := make([]float32, n)
		for i := range out {
			if kind == BaselineUniform {
				out[i] = float32(float64(int64(rng.Uint64())) * math.Ldexp(1, -FixedScale))
			} else {
				out[i] = float32(mean + std*rng.NormFloat64())
			}
		}
		return out
	}
	var actVals []float32
	for _, row := range v.acts {
		actVals = append(actVals, row...)
	}
	am, as := meanStd(actVals)
	for _, p := range sortedKeys(v.acts) {
		r.acts[p] = gen(v.dim, am, as)
	}
	var finVals []float32
	for _, row := range v.finals {
		finVals = append(finVals, row...)
	}
	fm, fs := meanStd(finVals)
	for _, p := range sortedKeys(v.finals) {
		r.finals[p] = gen(v.dim, fm, fs)
	}
	lm, ls := meanStd(v.logitVals)
	for _, p := range sortedKeys(v.logits) {
		lg := gen(v.vocab, lm, ls)
		best := 0
		for i, x := range lg {
			if x > lg[best] {
				best = i
			}
		}
		r.logits[p] = best
	}
	byKind := map[string][]float32{}
	for _, w := range v.windows {
		byKind[w.kind()] = append(byKind[w.kind()], w.row...)
	}
	stats := map[string][2]float64{}
	for k, vals := range byKind {
		m, s := meanStd(vals)
		stats[k] = [2]float64{m, s}
	}
	for _, w := range v.windows {
		st := stats[w.kind()]
		r.windows = append(r.windows, window{pos: w.pos, src: w.src, row: gen(len(w.row), st[0], st[1])})
	}
	return r
}

func meanStd(xs []float32) (float64, float64) {
	if len(xs) == 0 {
		return 0, 1
	}
	var s, s2 float64
	for _, x := range xs {
		s += float64(x)
	}
	mean := s / float64(len(xs))
	for _, x := range xs {
		d := float64(x) - mean
		s2 += d * d
	}
	std := math.Sqrt(s2 / float64(len(xs)))
	if !(std > 0) || math.IsInf(std, 0) {
		std = 1
	}
	return mean, std
}

func sortedKeys[V any](m map[int]V) []int {
	ks := make([]int, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Ints(ks)
	return ks
}
