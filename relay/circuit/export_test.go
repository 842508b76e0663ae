package circuit

// SetDestroyReasonInClear turns on TestDestroyReasonInsideOnion's mutation:
// DESTROY reasons in the clear to every earlier hop, no TRUNCATED. It returns
// the function that turns it off.
func SetDestroyReasonInClear() (restore func()) {
	destroyReasonInClear = true
	return func() { destroyReasonInClear = false }
}
