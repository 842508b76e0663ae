package hop_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/unfed/unfed/compute/model"
	"github.com/unfed/unfed/compute/tensor"
	"github.com/unfed/unfed/relay/hop"
	"github.com/unfed/unfed/relay/verify"
)

// sessionSteps is how many steps (the prompt, then one token each) a
// session of the detection runs lasts before the client opens another.
const sessionSteps = 24

// stepsToDetect runs sessions of sessionSteps steps through three hops
// whose middle hop corrupts each step with probability f. As a client
// draws (spec/11 §3.3), the middle hop of each session is audited with
// probability p: one ticket of the session's last step, re-executed on the
// portable path with another shard, checks every step through the
// commitment's chains. It returns the steps run until the end of the first
// session judged Fraud, or 0 when none came within limit steps. A verdict
// that disagrees with whether any step of the session was corrupted fails
// the test.
func stepsToDetect(t testing.TB, shards []*model.Shard, check *model.Shard, f, p float64, rng *rand.Rand, limit int) int {
	bad := false // a step of the current session was corrupted
	restore := hop.SetCorrupt(func(cfg *hop.Config, out []float32, step int) {
		if cfg.Shard == shards[1] && rng.Float64() < f {
			out[0] += 1
			bad = true
		}
	})
	defer restore()
	steps := 0
	for steps < limit {
		bad = false
		r := newAuditRun(t, shards, hop.F32, [32]byte{byte(steps), byte(steps >> 8)}, nil)
		next := r.step(prompt(t))
		steps++
		for k := 1; k < sessionSteps && steps < limit; k++ {
			next = r.step([]int{next})
			steps++
		}
		if rng.Float64() >= p {
			r.chain.Close()
			continue
		}
		tk := r.ticket(1, len(r.commits[1])-1, 0)
		r.chain.Close()
		undo := tensor.UsePortable()
		v, err := verify.Check(tk, check)
		undo()
		if err != nil {
			t.Fatal(err)
		}
		if (v == verify.Fraud) != bad {
			t.Fatalf("session ending at step %d: corrupted %v, judged %v", steps, bad, v)
		}
		if v == verify.Fraud {
			return steps
		}
	}
	return 0
}

// expectedSteps is the expected number of steps until detection with
// per-session draws: sessions of n steps, each caught with probability
// p·(1 − (1 − f)^n).
func expectedSteps(f, p float64, n int) float64 {
	return float64(n) / (p * (1 - math.Pow(1-f, float64(n))))
}

// TestPartialCheaterDetected: a relay corrupting 10% of its steps, its
// sessions of 24 steps audited at p = 5%, is caught after about
// 24/(p·(1 − 0.9^24)) ≈ 521 steps; over 6 runs every one is caught within
// 6000 steps (250 sessions: the chance to escape that long is
// (1 − 0.05·0.92)^250 ≈ 8e-6 per run), every verdict is exact, and the
// mean is reported against the formula.
func TestPartialCheaterDetected(t *testing.T) {
	shards := testShards(t)
	check := loadShard(t, 2, 4, model.Limits{})
	const f, p, runs, limit = 0.1, 0.05, 6, 6000
	rng := rand.New(rand.NewPCG(17, 1))
	sum := 0
	for i := range runs {
		n := stepsToDetect(t, shards, check, f, p, rng, limit)
		if n == 0 {
			t.Fatalf("run %d: a 10%% cheater went undetected for %d steps", i, limit)
		}
		sum += n
	}
	t.Logf("f=%.2f p=%.2f: mean %.0f steps to detection over %d runs; expected %.0f", f, p, float64(sum)/runs, runs, expectedSteps(f, p, sessionSteps))
}

// TestHonestNeverFlagged: 500 steps of honest hops, every session of the
// middle hop audited (so every step checked) and re-executed on the
// portable path: no verdict but Honest (stepsToDetect fails the test on a
// Fraud of a clean session).
func TestHonestNeverFlagged(t *testing.T) {
	shards := testShards(t)
	check := loadShard(t, 2, 4, model.Limits{})
	if n := stepsToDetect(t, shards, check, 0, 1, rand.New(rand.NewPCG(5, 5)), 500); n != 0 {
		t.Fatalf("an honest relay was judged fraudulent after %d steps", n)
	}
}

// BenchmarkDetection measures the steps to detection for f = 1, 0.1 and
// 0.01 at p = 5% (docs/PERFORMANCE.md, "Verification"): steps/detect is the
// mean over b.N runs (use -benchtime Nx), expected is expectedSteps.
func BenchmarkDetection(b *testing.B) {
	shards := testShards(b)
	check := loadShard(b, 2, 4, model.Limits{})
	const p = 0.05
	for _, f := range []float64{1, 0.1, 0.01} {
		b.Run(fmt.Sprintf("f=%g", f), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(uint64(1/f), 2))
			sum, runs := 0, 0
			for b.Loop() {
				n := stepsToDetect(b, shards, check, f, p, rng, int(40*expectedSteps(f, p, sessionSteps)))
				if n == 0 {
					b.Fatalf("f=%g undetected", f)
				}
				sum += n
				runs++
			}
			b.ReportMetric(float64(sum)/float64(runs), "steps/detect")
			b.ReportMetric(expectedSteps(f, p, sessionSteps), "expected")
		})
	}
}
