//go:build !unfedcheat

package sharechain

import (
	"os"
	"os/exec"
	"testing"
)

// TestNoFaultHookInProduction: in a build without the unfedcheat tag the
// accept-spent, uncle-spend and partition hooks stay nil even with
// UNFED_CHEAT_ACCEPTSPENT, UNFED_CHEAT_UNCLESPEND and UNFED_CHEAT_DEAF_WHILE
// set in the environment
// from the process's start (checked in a child process, since the tagged
// build reads them at init).
func TestNoFaultHookInProduction(t *testing.T) {
	if os.Getenv("UNFED_SHARECHAIN_CHILD") == "1" {
		if acceptSpent != nil {
			t.Fatal("the accept-spent hook is set in a production build")
		}
		if unclesMaySpend != nil {
			t.Fatal("the uncle-spend hook is set in a production build")
		}
		if deafToBlocks != nil {
			t.Fatal("the partition hook is set in a production build")
		}
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestNoFaultHookInProduction$", "-test.count=1")
	cmd.Env = append(os.Environ(), "UNFED_SHARECHAIN_CHILD=1", "UNFED_CHEAT_ACCEPTSPENT=1", "UNFED_CHEAT_DEAF_WHILE=/", "UNFED_CHEAT_UNCLESPEND=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
}
