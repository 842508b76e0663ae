package hop_test

import (
	"fmt"
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

// stepsToDetect runs sessions through three hops whose middle hop corrupts
// each step with probability f, audits each of its steps with probability
// p (a ticket re-executed on the portable path with another shard), and
// returns the steps run until the first Fraud verdict, or 0 when none came
// within limit steps. An Honest verdict on a corrupted step or a Fraud on a
// clean one fails the test.
func stepsToDetect(t testing.TB, shards []*model.Shard, check *model.Shard, f, p float64, rng *rand.Rand, limit int) int {
	bad := map[int]bool{} // corrupted steps of the current session
	restore := hop.SetCorrupt(func(cfg *hop.Config, out []float32, step int) {
		if cfg.Shard == shards[1] && rng.Float64() < f {
			out[0] += 1
			bad[step] = true
		}
	})
	defer restore()
	steps := 0
	for steps < limit {
		clear(bad)
		r := newAuditRun(t, shards, hop.F32, [32]byte{byte(steps)}, nil)
		next := r.step(prompt(t))
		for k := 0; k < sessionSteps && steps < limit; k++ {
			if k > 0 {
				next = r.step([]int{next})
			}
			steps++
			if rng.Float64() >= p {
				continue
			}
			tk := r.ticket(1, k, 0)
			undo := tensor.UsePortable()
			v, err := verify.Check(tk, check)
			undo()
			if err != nil {
				t.Fatal(err)
			}
			if (v == verify.Fraud) != bad[k] {
				t.Fatalf("step %d corrupted %v, judged %v", k, bad[k], v)
			}
			if v == verify.Fraud {
				r.chain.Close()
				return steps
			}
		}
		r.chain.Close()
	}
	return 0
}

// TestPartialCheaterDetected: a relay corrupting 10% of its steps, audited
// at p = 5%, is caught after about 1/(p·f) = 200 steps; over 6 runs every
// one is caught within 2000 steps (the chance to escape that long is
// (1 − p·f)^2000 ≈ 4.5e-5 per run), every verdict is exact, and the
// mean is reported against the formula.
func TestPartialCheaterDetected(t *testing.T) {
	shards := testShards(t)
	check := loadShard(t, 2, 4, model.Limits{})
	const f, p, runs, limit = 0.1, 0.05, 6, 2000
	rng := rand.New(rand.NewPCG(17, 1))
	sum := 0
	for i := range runs {
		n := stepsToDetect(t, shards, check, f, p, rng, limit)
		if n == 0 {
			t.Fatalf("run %d: a 10%% cheater went undetected for %d steps", i, limit)
		}
		sum += n
	}
	t.Logf("f=%.2f p=%.2f: mean %.0f steps to detection over %d runs; expected 1/(p·f) = %.0f", f, p, float64(sum)/runs, runs, 1/(p*f))
}

// TestHonestNeverFlagged: 500 steps of honest hops, every step of the
// middle hop audited and re-executed on the portable path: no verdict but
// Honest (stepsToDetect fails the test on any Fraud of a clean step).
func TestHonestNeverFlagged(t *testing.T) {
	shards := testShards(t)
	check := loadShard(t, 2, 4, model.Limits{})
	if n := stepsToDetect(t, shards, check, 0, 1, rand.New(rand.NewPCG(5, 5)), 500); n != 0 {
		t.Fatalf("an honest relay was judged fraudulent after %d steps", n)
	}
}

// BenchmarkDetection measures the steps to detection for f = 1, 0.1 and
// 0.01 at p = 5% (docs/PERFORMANCE.md, "Verification"): steps/detect is the
// mean over b.N runs (use -benchtime Nx), expected is 1/(p·f).
func BenchmarkDetection(b *testing.B) {
	shards := testShards(b)
	check := loadShard(b, 2, 4, model.Limits{})
	const p = 0.05
	for _, f := range []float64{1, 0.1, 0.01} {
		b.Run(fmt.Sprintf("f=%g", f), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(uint64(1/f), 2))
			sum, runs := 0, 0
			for b.Loop() {
				n := stepsToDetect(b, shards, check, f, p, rng, int(40/(p*f)))
				if n == 0 {
					b.Fatalf("f=%g undetected", f)
				}
				sum += n
				runs++
			}
			b.ReportMetric(float64(sum)/float64(runs), "steps/detect")
			b.ReportMetric(1/(p*f), "expected")
		})
	}
}
