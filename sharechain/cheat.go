//go:build unfedcheat

package sharechain

import "os"

// A relay built with the unfedcheat tag and UNFED_CHEAT_ACCEPTSPENT=1 in
// its environment acknowledges credits already spent (Node.Pay): the
// broken rule with which testnet's TestDoubleSpendRejectedProcesses must
// fail. With UNFED_CHEAT_DEAF_WHILE=path it drops every block its peers
// send while path exists (HandleGossip): a partition, under which two
// relays paid with one credit each carry it in a block of their own
// (testnet's competing-blocks case). With UNFED_CHEAT_UNCLESPEND=1 its
// chain lets an uncle carry credits already spent in the ancestry
// (checkUncle), the broken rule with which TestDoubleSpendCompetingBlocks
// must fail. Production builds do not contain
// this file.
func init() {
	if os.Getenv("UNFED_CHEAT_ACCEPTSPENT") == "1" {
		acceptSpent = func() bool { return true }
	}
	if os.Getenv("UNFED_CHEAT_UNCLESPEND") == "1" {
		unclesMaySpend = func() bool { return true }
	}
	if path := os.Getenv("UNFED_CHEAT_DEAF_WHILE"); path != "" {
		deafToBlocks = func() bool {
			_, err := os.Stat(path)
			return err == nil
		}
	}
}
