//go:build !unfedcheat

package hop

import (
	"os"
	"os/exec"
	"testing"
)

// TestNoFaultHookInProduction: in a build without the unfedcheat tag the
// fault hook stays nil even with UNFED_CHEAT_FRACTION set in the
// environment from the process's start (checked in a child process, since
// the tagged build reads it at init). Built with -tags unfedcheat (where
// this file is excluded) the same child would find the hook set.
func TestNoFaultHookInProduction(t *testing.T) {
	if os.Getenv("UNFED_HOP_CHILD") == "1" {
		if corrupt != nil || skipLayers != nil || tamperPiece != nil || tamperPrep != nil || tamperPeer != nil || miscompute != nil {
			t.Fatal("the fault hook is set in a production build")
		}
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestNoFaultHookInProduction$", "-test.count=1")
	cmd.Env = append(os.Environ(), "UNFED_HOP_CHILD=1", "UNFED_CHEAT_FRACTION=1", "UNFED_CHEAT_SKIP=1", "UNFED_CHEAT_TAMPER=1", "UNFED_CHEAT_MISCOMPUTE=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
}
