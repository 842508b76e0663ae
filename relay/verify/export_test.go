package verify

// SetSkipCompare turns off CheckParty's comparison of a re-executed party's
// openings and outputs with its commitment (a mutation for tests) and
// returns its remover.
func SetSkipCompare() func() {
	skipCompare = true
	return func() { skipCompare = false }
}

// SetSkipStateHash turns off CheckPartyView's check of the state rows
// before a window against the records' state hashes (a mutation for
// tests) and returns its remover.
func SetSkipStateHash() func() {
	skipStateHash = true
	return func() { skipStateHash = false }
}
