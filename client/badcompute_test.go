package client

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/unfed/unfed/directory"
)

// TestSelectPathAvoidsBadCompute: a compute relay flagged BadCompute
// (spec/11 §5.3) is never chosen, even when it is the only one of its
// shard; without the flag the same network has a path.
func TestSelectPathAvoidsBadCompute(t *testing.T) {
	n := anonymousNetwork(t)
	spec := PathSpec{Model: "m", NLayers: 5, Mode: ModeAnonymous, Guard: n.get(t, "g")}
	if _, err := SelectPath(n.rs, spec, rand.New(rand.NewPCG(1, 1))); err != nil {
		t.Fatalf("unflagged network: %v", err)
	}
	for i := range n.rs {
		if n.rs[i].Compute != nil {
			n.rs[i].Flags = append([]directory.Flag{directory.FlagBadCompute}, n.rs[i].Flags...)
		}
	}
	if _, err := SelectPath(n.rs, spec, rand.New(rand.NewPCG(1, 1))); !errors.Is(err, ErrNoPath) {
		t.Fatalf("err = %v, want ErrNoPath when every compute relay is BadCompute", err)
	}
}
