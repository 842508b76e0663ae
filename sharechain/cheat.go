//go:build unfedcheat

package sharechain

import "os"

// A relay built with the unfedcheat tag and UNFED_CHEAT_ACCEPTSPENT=1 in
// its environment acknowledges credits already spent (Node.Pay): the
// broken rule with which testnet's TestDoubleSpendRejectedProcesses must
// fail. Production builds do not contain this file.
func init() {
	if os.Getenv("UNFED_CHEAT_ACCEPTSPENT") == "1" {
		acceptSpent = func() bool { return true }
	}
}
