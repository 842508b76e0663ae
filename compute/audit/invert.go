package audit

import (
	"fmt"
	"math"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/unfed/unfed/compute/model"
	"github.com/unfed/unfed/compute/sample"
	"github.com/unfed/unfed/compute/tensor"
)

// Model is what an attacking relay holds: the public weights. It runs the
// vocabulary-matching attack with the engine (compute/model) and is safe for
// use by one goroutine at a time.
type Model struct {
	path    string
	cfg     model.Config
	embd    *table
	workers int

	mu     sync.Mutex
	shards map[int]*model.Shard // [0, L) by L, single-threaded
	twinOf map[int][]int
	ends   *model.Ends // the final norm and head, loaded on first use
}

// HeadArgmax applies the public final norm and output head to a final
// hidden state, as the client does, and returns the most likely token.
func (m *Model) HeadArgmax(hidden []float32) (int, error) {
	m.mu.Lock()
	if m.ends == nil {
		e, err := model.LoadEnds(m.path)
		if err != nil {
			m.mu.Unlock()
			return 0, fmt.Errorf("audit: %w", err)
		}
		m.ends = e
	}
	e := m.ends
	m.mu.Unlock()
	lg, err := e.Logits(hidden)
	if err != nil {
		return 0, fmt.Errorf("audit: %w", err)
	}
	return sample.Argmax(lg), nil
}

// Open loads the model file at path for attacks. Candidates are evaluated
// by GOMAXPROCS workers, each with its own session.
func Open(path string) (*Model, error) {
	e, cfg, err := model.EmbeddingF32(path)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	t, err := newTable(e, cfg.Vocab, cfg.Dim)
	if err != nil {
		return nil, err
	}
	return &Model{path: path, cfg: cfg, embd: t, workers: max(1, runtime.GOMAXPROCS(0)),
		shards: map[int]*model.Shard{}, twinOf: map[int][]int{}}, nil
}

// Config returns the model's hyperparameters.
func (m *Model) Config() model.Config { return m.cfg }

// Embedding returns a copy of token id's embedding row, or nil for an id
// outside the vocabulary.
func (m *Model) Embedding(id int) []float32 {
	if id < 0 || id >= m.cfg.Vocab {
		return nil
	}
	return m.embd.row(id)
}

// Close releases the shards the attacks loaded.
func (m *Model) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for l, s := range m.shards {
		s.Close()
		delete(m.shards, l)
	}
	if m.ends != nil {
		m.ends.Close()
		m.ends = nil
	}
	return nil
}

// shard returns the single-threaded shard of layers [0, L).
func (m *Model) shard(L int) (*model.Shard, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s := m.shards[L]; s != nil {
		return s, nil
	}
	s, err := model.Load(m.path, model.ShardOptions{First: 0, Last: L, Threads: 1})
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	m.shards[L] = s
	return s, nil
}

// twinRel bounds the relative squared distance between the embedding rows
// of twins: tokens the model barely tells apart (a small model's untrained
// byte tokens differ by about 1e-7).
const twinRel = 1e-4

// twins returns the other tokens whose embedding row is within twinRel of
// id's.
func (m *Model) twins(id int) []int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t, ok := m.twinOf[id]; ok {
		return t
	}
	r := m.embd.row(id)
	rr := sqNorm(r)
	dots := make([]float32, m.cfg.Vocab)
	_ = tensor.MatMul(dots, m.embd.mat, r, 1, 1)
	var out []int
	c := make([]float32, m.cfg.Dim)
	for j, d := range dots {
		// A cheap bound first, the exact distance for the few that pass.
		if j == id || rr-2*float64(d)+m.embd.sq[j] > 2*twinRel*rr {
			continue
		}
		m.embd.mat.Row(c, j)
		if sqDist(r, c) <= twinRel*rr {
			out = append(out, j)
		}
	}
	m.twinOf[id] = out
	return out
}

// table is a set of candidate rows (one per token) searched by L2 distance.
type table struct {
	mat  *tensor.Mat
	sq   []float64 // squared norm of every row
	norm []float64 // norm of every row
	dim  int
}

func newTable(rows []float32, n, dim int) (*table, error) {
	mat, err := tensor.NewMatF32(n, dim, rows)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	t := &table{mat: mat, sq: make([]float64, n), norm: make([]float64, n), dim: dim}
	for i := range t.sq {
		t.sq[i] = sqNorm(rows[i*dim : (i+1)*dim])
		t.norm[i] = math.Sqrt(t.sq[i])
	}
	return t, nil
}

func (t *table) row(i int) []float32 {
	out := make([]float32, t.dim)
	t.mat.Row(out, i)
	return out
}

// nearest returns, for each row of xs, the index of the nearest table row
// and its squared distance relative to the row's squared norm (the squared
// distance itself for a zero row). A row of the wrong length, or with no
// finite distance, gets index -1 and relative distance +Inf.
//
// Distances come from one matrix product (|r|² − 2 r·c + |c|²); every
// candidate within the product's float32 rounding of the best is then
// measured exactly, so rows that differ by less than the rounding (the
// untrained tokens of a small model have nearly identical embeddings) are
// still told apart.
func (t *table) nearest(xs [][]float32) ([]int, []float64) {
	idx := make([]int, len(xs))
	rel := make([]float64, len(xs))
	n := t.mat.Rows
	const batch = 64
	x := make([]float32, 0, batch*t.dim)
	dots := make([]float32, batch*n)
	score := make([]float64, n)
	row := make([]float32, t.dim)
	var which []int
	// Rounding of a float32 dot product of dim terms, relative to |r||c|.
	slack := 4 * float64(t.dim) * 0x1p-24
	flush := func() {
		if len(which) == 0 {
			return
		}
		b := len(which)
		_ = tensor.MatMul(dots[:b*n], t.mat, x, b, 1)
		for k, i := range which {
			r := x[k*t.dim : (k+1)*t.dim]
			rr := sqNorm(r)
			// |r|² is common to every candidate and left out: for a huge
			// row it would swamp the differences in float64.
			best, bs := -1, math.Inf(1)
			for j, d := range dots[k*n : (k+1)*n] {
				score[j] = t.sq[j] - 2*float64(d)
				if score[j] < bs {
					best, bs = j, score[j]
				}
			}
			if best < 0 {
				idx[i], rel[i] = -1, math.Inf(1)
				continue
			}
			bestExact := math.Inf(1)
			nr := slack * math.Sqrt(rr)
			lim := bs + nr*t.norm[best] + 1e-30
			for j, sc := range score {
				if sc <= lim+nr*t.norm[j] {
					t.mat.Row(row, j)
					if d := sqDist(r, row); d < bestExact || (d == bestExact && j < best) {
						best, bestExact = j, d
					}
				}
			}
			idx[i] = best
			rel[i] = relDist(bestExact, rr)
		}
		x, which = x[:0], which[:0]
	}
	for i, r := range xs {
		if len(r) != t.dim {
			idx[i], rel[i] = -1, math.Inf(1)
			continue
		}
		x = append(x, r...)
		which = append(which, i)
		if len(which) == batch {
			flush()
		}
	}
	flush()
	return idx, rel
}

func sqNorm(r []float32) float64 {
	var s float64
	for _, x := range r {
		s += float64(x) * float64(x)
	}
	return s
}

func relDist(d2, norm2 float64) float64 {
	if math.IsNaN(d2) {
		return math.Inf(1)
	}
	d2 = max(d2, 0)
	if norm2 > 0 && !math.IsInf(norm2, 0) {
		return d2 / norm2
	}
	return d2
}

// NearestEmbedding returns, for each row, the token whose embedding row is
// nearest in L2: the attack on the residual stream entering layer 0. A row
// that is not of the model's width gets -1.
func NearestEmbedding(m *Model, rows [][]float32) []int {
	idx, _ := m.embd.nearest(rows)
	return idx
}

// exactRel is the relative squared distance under which a candidate's row
// counts as the observed row itself, and the search at a position stops:
// rows on an edge may be f16 (relative rounding error at most 2^-11 per
// element), anything else differs by far more.
const exactRel = 1e-6

// Invert runs the vocabulary-matching attack against rows, the residual
// stream entering layer L at positions 0 … len(rows)−1 of one sequence:
// for each position p in order, given the tokens recovered for positions
// before p (kept in the engine's KV cache), it runs layers [0, L) on every
// candidate token at position p and keeps the one whose output is nearest in
// L2 to rows[p], then rolls the cache back and appends the winner. For L = 0
// it is NearestEmbedding.
//
// Candidates are tried in the order of their embedding row's distance to
// the observed row, split over the model's workers; a candidate whose output
// matches the row to within f16 rounding ends the search at that position
// (no other token can produce the same row). On data that matches nothing,
// every candidate is tried.
func Invert(m *Model, L int, rows [][]float32) ([]int, error) {
	ids, _, err := InvertDistances(m, L, rows)
	return ids, err
}

// InvertDistances is Invert that also returns, for each position, the
// squared distance between the winner's row and the observed row relative
// to the observed row's squared norm: 0 when the winner reproduces the row
// bit for bit, about 1e-7 through an f16 edge, and of order 1 on data the
// model did not produce.
func InvertDistances(m *Model, L int, rows [][]float32) ([]int, []float64, error) {
	if err := m.checkRows(L, rows); err != nil {
		return nil, nil, err
	}
	if L == 0 {
		ids, rel := m.embd.nearest(rows)
		return ids, rel, nil
	}
	sc, err := m.newScanner(L, len(rows))
	if err != nil {
		return nil, nil, err
	}
	defer sc.close()
	out := make([]int, len(rows))
	rels := make([]float64, len(rows))
	for p, row := range rows {
		best, rel, err := sc.search(p, row, m.order(row))
		if err != nil {
			return nil, nil, err
		}
		if err := sc.advance(p, best); err != nil {
			return nil, nil, err
		}
		out[p], rels[p] = best, rel
	}
	return out, rels, nil
}

func (m *Model) checkRows(L int, rows [][]float32) error {
	if L < 0 || L >= m.cfg.NLayers {
		return fmt.Errorf("audit: layer %d outside [0, %d)", L, m.cfg.NLayers)
	}
	for p, r := range rows {
		if len(r) != m.cfg.Dim {
			return fmt.Errorf("audit: row %d has %d values, the model's width is %d", p, len(r), m.cfg.Dim)
		}
	}
	return nil
}

// order returns every token id, nearest embedding row to row first.
func (m *Model) order(row []float32) []int {
	n := m.cfg.Vocab
	dots := make([]float32, n)
	_ = tensor.MatMul(dots, m.embd.mat, row, 1, 1)
	d := make([]float64, n)
	ids := make([]int, n)
	for i := range ids {
		ids[i] = i
		d[i] = m.embd.sq[i] - 2*float64(dots[i])
		if math.IsNaN(d[i]) {
			d[i] = math.Inf(1)
		}
	}
	sort.SliceStable(ids, func(a, b int) bool { return d[ids[a]] < d[ids[b]] })
	return ids
}

// scanner runs candidates at one position in parallel sessions that all
// hold the same prefix.
type scanner struct {
	m        *Model
	sessions []*model.Session
}

func (m *Model) newScanner(L, positions int) (*scanner, error) {
	sh, err := m.shard(L)
	if err != nil {
		return nil, err
	}
	sc := &scanner{m: m}
	for range m.workers {
		ss, err := sh.NewSession(model.SessionOptions{MaxContext: positions + 1})
		if err != nil {
			sc.close()
			return nil, fmt.Errorf("audit: %w", err)
		}
		sc.sessions = append(sc.sessions, ss)
	}
	return sc, nil
}

func (sc *scanner) close() {
	for _, s := range sc.sessions {
		s.Close()
	}
}

// advance appends token id at position p to every session.
func (sc *scanner) advance(p, id int) error {
	for _, s := range sc.sessions {
		if _, err := s.ForwardTokens([]int{id}, p); err != nil {
			return fmt.Errorf("audit: %w", err)
		}
	}
	return nil
}

// search tries the candidates of order at position p and returns the one
// whose output is nearest to row (the lowest id on ties) with its relative
// squared distance. It stops early on an exact match.
func (sc *scanner) search(p int, row []float32, order []int) (int, float64, error) {
	rr := sqNorm(row)
	var next atomic.Int64
	var stop atomic.Bool
	type result struct {
		id  int
		rel float64
		err error
	}
	res := make([]result, len(sc.sessions))
	var wg sync.WaitGroup
	for w, ss := range sc.sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := result{id: -1, rel: math.Inf(1)}
			for !stop.Load() {
				i := int(next.Add(1) - 1)
				if i >= len(order) {
					break
				}
				v := order[i]
				y, err := ss.ForwardTokens([]int{v}, p)
				if err == nil {
					err = ss.Truncate(p)
				}
				if err != nil {
					r.err = fmt.Errorf("audit: %w", err)
					stop.Store(true)
					break
				}
				rel := relDist(sqDist(y, row), rr)
				if rel < r.rel || (rel == r.rel && v < r.id) {
					r.id, r.rel = v, rel
				}
				if rel <= exactRel {
					stop.Store(true)
				}
			}
			res[w] = r
		}()
	}
	wg.Wait()
	best := result{id: -1, rel: math.Inf(1)}
	for _, r := range res {
		if r.err != nil {
			return 0, 0, r.err
		}
		if r.id >= 0 && (r.rel < best.rel || (r.rel == best.rel && r.id < best.id) || best.id < 0) {
			best = r
		}
	}
	if best.id < 0 {
		// No finite distance (a row of NaNs): any token is as good a guess.
		return order[0], math.Inf(1), nil
	}
	if best.rel <= exactRel {
		// The search stopped at a match; a twin of the winner produces
		// nearly the same row and may not have been tried: try them all.
		ss := sc.sessions[0]
		for _, v := range sc.m.twins(best.id) {
			y, err := ss.ForwardTokens([]int{v}, p)
			if err == nil {
				err = ss.Truncate(p)
			}
			if err != nil {
				return 0, 0, fmt.Errorf("audit: %w", err)
			}
			if rel := relDist(sqDist(y, row), rr); rel < best.rel || (rel == best.rel && v < best.id) {
				best.id, best.rel = v, rel
			}
		}
	}
	return best.id, best.rel, nil
}

// candidates returns the output of layers [0, L) for every token at
// position p, Vocab×Dim row-major, after the prefix the sessions hold.
func (sc *scanner) candidates(p int) ([]float32, error) {
	n, dim := sc.m.cfg.Vocab, sc.m.cfg.Dim
	out := make([]float32, n*dim)
	var next atomic.Int64
	errs := make([]error, len(sc.sessions))
	var wg sync.WaitGroup
	for w, ss := range sc.sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				v := int(next.Add(1) - 1)
				if v >= n {
					return
				}
				y, err := ss.ForwardTokens([]int{v}, p)
				if err == nil {
					err = ss.Truncate(p)
				}
				if err != nil {
					errs[w] = fmt.Errorf("audit: %w", err)
					return
				}
				copy(out[v*dim:(v+1)*dim], y)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func sqDist(a, b []float32) float64 {
	var s float64
	for i, x := range a {
		d := float64(x) - float64(b[i])
		s += d * d
	}
	return s
}

// KnownPrefix is the attack with the prefix given: for each position p it
// holds the output of layers [0, L) for every candidate token at p after
// the true tokens 0 … p−1. Matching a row at p against it is the strongest
// form of Invert (the attacker is handed the prefix instead of recovering
// it), and costs one table per position however many rows are matched.
type KnownPrefix struct {
	L      int
	tables []*table
}

// NewKnownPrefix computes the tables of positions 0 … len(prefix)−1 for the
// residual stream entering layer L, after the true tokens prefix. For L = 0
// every position's table is the embedding.
func NewKnownPrefix(m *Model, L int, prefix []int) (*KnownPrefix, error) {
	if L < 0 || L >= m.cfg.NLayers {
		return nil, fmt.Errorf("audit: layer %d outside [0, %d)", L, m.cfg.NLayers)
	}
	kp := &KnownPrefix{L: L, tables: make([]*table, len(prefix))}
	if L == 0 {
		for p := range kp.tables {
			kp.tables[p] = m.embd
		}
		return kp, nil
	}
	for _, id := range prefix {
		if id < 0 || id >= m.cfg.Vocab {
			return nil, fmt.Errorf("audit: token %d outside the vocabulary of %d", id, m.cfg.Vocab)
		}
	}
	sc, err := m.newScanner(L, len(prefix))
	if err != nil {
		return nil, err
	}
	defer sc.close()
	for p, id := range prefix {
		c, err := sc.candidates(p)
		if err != nil {
			return nil, err
		}
		if kp.tables[p], err = newTable(c, m.cfg.Vocab, m.cfg.Dim); err != nil {
			return nil, err
		}
		if p+1 < len(prefix) {
			if err := sc.advance(p, id); err != nil {
				return nil, err
			}
		}
	}
	return kp, nil
}

// Positions returns the number of positions the tables cover.
func (kp *KnownPrefix) Positions() int { return len(kp.tables) }

// Match returns, for each row at position p, the candidate whose output is
// nearest and its relative squared distance; -1 and +Inf where p is not
// covered or a row has the wrong width.
func (kp *KnownPrefix) Match(p int, rows [][]float32) ([]int, []float64) {
	if p < 0 || p >= len(kp.tables) {
		idx, rel := make([]int, len(rows)), make([]float64, len(rows))
		for i := range idx {
			idx[i], rel[i] = -1, math.Inf(1)
		}
		return idx, rel
	}
	return kp.tables[p].nearest(rows)
}
