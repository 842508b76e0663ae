package testnet

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// chaosSpec is the network shape of the chaos runs: a spare of every role
// (three parties and three dealers for two stages, two guards, two replicas
// of each anonymous shard), a 4 s interval and patient probes.
func chaosSpec() Spec {
	return Spec{Guards: 2, Replicas: 2, Parties: 3, Dealers: 3, Interval: 4 * time.Second}
}

// chaosSeed is UNFED_CHAOS_SEED when set (to replay a failed run), else def.
func chaosSeed(t *testing.T, def uint64) uint64 {
	if s := os.Getenv("UNFED_CHAOS_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("UNFED_CHAOS_SEED=%q: %v", s, err)
		}
		return v
	}
	return def
}

// TestChaosShort is the bounded chaos run of CI (`make chaos` runs the
// full one): 30 s of seeded faults under three sessions of load. See
// chaos.go for what it asserts; a failure prints the seed and the plan.
func TestChaosShort(t *testing.T) {
	n := startNetworkPatched(t, chaosSpec(), patientAuthorities)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var log strings.Builder
	o := ChaosOptions{Seed: chaosSeed(t, 22), Duration: 30 * time.Second, Sessions: 3, MaxTokens: 6, Flood: 150, SlowConns: 4, Log: &log}
	rep, err := Chaos(ctx, n, o)
	t.Log("\n" + log.String())
	if err != nil {
		t.Fatalf("chaos run (seed %d): %v", o.Seed, err)
	}
	if len(rep.Violations) > 0 {
		t.Fatalf("chaos run (seed %d; replay with UNFED_CHAOS_SEED=%d): %d violations:\n%s", o.Seed, o.Seed, len(rep.Violations),
			strings.Join(rep.Violations, "\n"))
	}
}

// TestChaosPlanReplays: the plan depends only on the seed and the network
// shape, and different seeds give different plans.
func TestChaosPlanReplays(t *testing.T) {
	spec := chaosSpec()
	spec.Dir, spec.BinDir, spec.Model = t.TempDir(), binDir, modelPath(t)
	n, err := Generate(spec)
	if err != nil {
		t.Fatal(err)
	}
	o := ChaosOptions{Seed: 7, Duration: time.Minute}
	a, b := PlanChaos(n, o), PlanChaos(n, o)
	o.Seed = 8
	c := PlanChaos(n, o)
	if len(a) < 5 || fmtPlan(a) != fmtPlan(b) {
		t.Fatalf("plan of seed 7 differs between calls or is short:\n%s\n%s", fmtPlan(a), fmtPlan(b))
	}
	if fmtPlan(a) == fmtPlan(c) {
		t.Fatal("seeds 7 and 8 gave the same plan")
	}
	kinds := map[string]bool{}
	for _, f := range a {
		kinds[f.Kind] = true
	}
	for _, k := range []string{"kill", "flood", "slow"} {
		if !kinds[k] {
			t.Errorf("plan has no %s fault: %s", k, fmtPlan(a))
		}
	}
}

func fmtPlan(p []Fault) string {
	var s []string
	for _, f := range p {
		s = append(s, f.String())
	}
	return strings.Join(s, "\n")
}
