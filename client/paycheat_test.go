//go:build !unfedcheat

package client

import (
	"os"
	"os/exec"
	"testing"
)

// TestNoDoubleSpendHookInProduction: in a build without the unfedcheat tag
// the double-spending hook stays nil even with UNFED_CHEAT_DOUBLESPEND set
// in the environment from the process's start (checked in a child
// process, since the tagged build reads it at init).
func TestNoDoubleSpendHookInProduction(t *testing.T) {
	if os.Getenv("UNFED_CLIENT_CHILD") == "1" {
		if replay != nil {
			t.Fatal("the double-spending hook is set in a production build")
		}
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestNoDoubleSpendHookInProduction$", "-test.count=1")
	cmd.Env = append(os.Environ(), "UNFED_CLIENT_CHILD=1", "UNFED_CHEAT_DOUBLESPEND="+t.TempDir()+"/rec.json")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
}
