package audit

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestNearestEmbedding(t *testing.T) {
	m, _, _ := testModel(t)
	cfg := m.Config()
	var rows [][]float32
	var want []int
	for id := 0; id < cfg.Vocab; id++ {
		rows = append(rows, m.Embedding(id))
		want = append(want, id)
	}
	if got := NearestEmbedding(m, rows); countEqual(got, want) != cfg.Vocab {
		t.Fatalf("embedding rows: %d of %d recovered", countEqual(got, want), cfg.Vocab)
	}
	// Through f16 a token is lost only to a twin whose embedding row differs
	// by less than the rounding (stories260K's untrained byte tokens).
	got := NearestEmbedding(m, f16Rows(rows))
	lost := 0
	for id, g := range got {
		if g != id {
			lost++
			if len(m.twins(id)) == 0 {
				t.Errorf("f16 row of token %d (no twin) matched %d", id, g)
			}
		}
	}
	t.Logf("f16 embedding rows: %d of %d recovered; the rest went to twins", cfg.Vocab-lost, cfg.Vocab)
	if got := NearestEmbedding(m, [][]float32{make([]float32, cfg.Dim-1), rows[5]}); got[0] != -1 || got[1] != 5 {
		t.Fatalf("a row of the wrong width: %v", got)
	}
	// Invert at layer 0 is the same attack.
	inv, err := Invert(m, 0, rows[:40])
	if err != nil || countEqual(inv, want[:40]) != 40 {
		t.Fatalf("Invert at 0: %v, %d of 40", err, countEqual(inv, want[:40]))
	}
}

// accept is the acceptance criterion of the attack on one sequence: at least
// 95% of the tokens recovered, and at least 95% of the positions matched
// exactly (the winner reproduces the observed row up to f16 rounding). The
// second part is what tells the attack from a near miss: on a model this
// small the residual stream after two layers is still close enough to the
// embedding that a wrong attack can get most tokens by proximity alone, but
// only the right computation reproduces the row.
func accept(got []int, rel []float64, want []int) (recovered, exact int, ok bool) {
	recovered = countEqual(got, want)
	for _, r := range rel {
		if r <= exactRel {
			exact++
		}
	}
	return recovered, exact, ratio(recovered, len(want)) >= 0.95 && ratio(exact, len(want)) >= 0.95
}

// TestInvertRecoversPrompts is the attack's acceptance test: on the
// residual stream a relay receives after 1 and 2 layers it recovers at
// least 95% of the tokens of every built-in prompt (by accept), in f32 and
// in f16.
func TestInvertRecoversPrompts(t *testing.T) {
	m, tok, path := testModel(t)
	for _, L := range []int{1, 2} {
		for _, f16 := range []bool{false, true} {
			total, ok := 0, 0
			var took time.Duration
			for i, ids := range promptIDs(tok, Prompts) {
				rows := engineRows(t, m, path, L, ids)
				if f16 {
					rows = f16Rows(rows)
				}
				start := time.Now()
				got, rel, err := InvertDistances(m, L, rows)
				took += time.Since(start)
				if err != nil {
					t.Fatal(err)
				}
				n, exact, good := accept(got, rel, ids)
				if !good {
					t.Errorf("L=%d f16=%v prompt %d: %d of %d tokens recovered, %d exact", L, f16, i, n, len(ids), exact)
				}
				total += len(ids)
				ok += n
			}
			t.Logf("L=%d f16=%v: %d of %d tokens recovered (%.1f%%), %v per position", L, f16, ok, total,
				100*ratio(ok, total), took/time.Duration(total))
		}
	}
}

// TestInvertRandomIsChance: on random rows of the same shape the attack is
// at chance (1/512 per position), far below what it recovers from real
// rows.
func TestInvertRandomIsChance(t *testing.T) {
	m, tok, path := testModel(t)
	rng := rand.New(rand.NewPCG(1, 2))
	ids := promptIDs(tok, Prompts[:4])
	for _, L := range []int{1, 2} {
		for _, kind := range Baselines {
			total, ok := 0, 0
			start := time.Now()
			for _, seq := range ids {
				var rows [][]float32
				if kind == BaselineUniform {
					rows = uniformRows(rng, len(seq), m.Config().Dim)
				} else {
					rows = gaussianRows(rng, engineRows(t, m, path, L, seq), len(seq))
				}
				got, err := Invert(m, L, rows)
				if err != nil {
					t.Fatal(err)
				}
				total += len(seq)
				ok += countEqual(got, seq)
			}
			t.Logf("L=%d %s rows: %d of %d (%.2f%%), %v per position (every candidate tried)", L, kind, ok, total,
				100*ratio(ok, total), time.Since(start)/time.Duration(total))
			if ratio(ok, total) > 0.02 {
				t.Errorf("L=%d %s rows: %d of %d recovered, above 2%%", L, kind, ok, total)
			}
		}
	}
}

// TestBrokenAttackFails shows that accept, the criterion of
// TestInvertRecoversPrompts, fails a broken attack: one that inverts at the
// wrong layer, or runs every candidate without the recovered prefix in the
// cache (at position 0). Both still recover many tokens by proximity.
func TestBrokenAttackFails(t *testing.T) {
	m, tok, path := testModel(t)
	ids := promptIDs(tok, Prompts[:4])
	broken := map[string]func(L int, rows [][]float32) ([]int, []float64){
		"wrong layer": func(L int, rows [][]float32) ([]int, []float64) {
			got, rel, err := InvertDistances(m, L-1, rows)
			if err != nil {
				t.Fatal(err)
			}
			return got, rel
		},
		"no prefix": func(L int, rows [][]float32) ([]int, []float64) {
			var out []int
			var rels []float64
			for _, r := range rows {
				got, rel, err := InvertDistances(m, L, [][]float32{r})
				if err != nil {
					t.Fatal(err)
				}
				out, rels = append(out, got[0]), append(rels, rel[0])
			}
			return out, rels
		},
	}
	for name, attack := range broken {
		for _, L := range []int{1, 2} {
			for i, seq := range ids {
				got, rel := attack(L, engineRows(t, m, path, L, seq))
				n, exact, ok := accept(got, rel, seq)
				t.Logf("%s, L=%d, prompt %d: %d of %d recovered, %d exact", name, L, i, n, len(seq), exact)
				if ok {
					t.Errorf("the broken attack %q is accepted at L=%d on prompt %d", name, L, i)
				}
			}
		}
	}
}

// TestInvertTwins: text outside the vocabulary is encoded as byte tokens,
// which stories260K never trained and whose embedding rows nearly coincide;
// the attack still tells them apart on f32 rows.
func TestInvertTwins(t *testing.T) {
	m, tok, path := testModel(t)
	seq := tok.Encode("Zoë paid ¥300 for 東京 tea.", true)
	twins := 0
	for _, id := range seq {
		if len(m.twins(id)) > 0 {
			twins++
		}
	}
	if twins < 5 {
		t.Fatalf("only %d twin tokens in %v", twins, seq)
	}
	for _, L := range []int{0, 1, 2} {
		got, rel, err := InvertDistances(m, L, engineRows(t, m, path, L, seq))
		if err != nil {
			t.Fatal(err)
		}
		if n := countEqual(got, seq); n != len(seq) {
			t.Errorf("L=%d: %d of %d tokens (%d twins) recovered: %v, want %v", L, n, len(seq), twins, got, seq)
		}
		for p, r := range rel {
			if r != 0 {
				t.Errorf("L=%d position %d: relative distance %g on f32 rows from the same engine", L, p, r)
			}
		}
	}
}

func TestKnownPrefix(t *testing.T) {
	m, tok, path := testModel(t)
	rng := rand.New(rand.NewPCG(3, 4))
	seq := promptIDs(tok, Prompts[1:2])[0]
	for _, L := range []int{0, 2} {
		kp, err := NewKnownPrefix(m, L, seq)
		if err != nil {
			t.Fatal(err)
		}
		real := engineRows(t, m, path, L, seq)
		random := uniformRows(rng, len(seq), m.Config().Dim)
		okReal, okRandom := 0, 0
		for p := range seq {
			ids, rel := kp.Match(p, [][]float32{real[p], random[p]})
			if ids[0] == seq[p] && rel[0] <= exactRel {
				okReal++
			}
			if ids[1] == seq[p] {
				okRandom++
			}
		}
		if okReal != len(seq) || okRandom > 1 {
			t.Fatalf("L=%d: real rows %d of %d matched exactly, random rows %d", L, okReal, len(seq), okRandom)
		}
	}
	if ids, _ := (&KnownPrefix{}).Match(0, [][]float32{nil}); ids[0] != -1 {
		t.Fatal("a position without a table matched")
	}
}

func TestInvertErrors(t *testing.T) {
	m, _, _ := testModel(t)
	cfg := m.Config()
	row := make([]float32, cfg.Dim)
	for _, c := range []struct {
		L    int
		rows [][]float32
	}{
		{-1, [][]float32{row}},
		{cfg.NLayers, [][]float32{row}},
		{1, [][]float32{row, row[:3]}},
	} {
		if _, err := Invert(m, c.L, c.rows); err == nil {
			t.Errorf("Invert at %d of %d rows accepted", c.L, len(c.rows))
		}
	}
	if _, err := NewKnownPrefix(m, 1, []int{cfg.Vocab}); err == nil {
		t.Error("a prefix outside the vocabulary accepted")
	}
}
