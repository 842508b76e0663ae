package hop

import (
	"time"

	"github.com/unfed/unfed/compute/mpc"
)

// DealYields returns how many times s's dealings have let the network
// through.
func (s *Service) DealYields() uint64 { return s.netYield.Count() }

// SetDealSlice sets the dealing time between yields to the network of the
// dealer sessions opened next (0: never yield) and returns its restorer.
func SetDealSlice(d time.Duration) func() {
	old := dealSlice
	dealSlice = d
	return func() { dealSlice = old }
}

// SetSkipLayers installs the layer-skipping fault hook for a test and
// returns a function that removes it.
func SetSkipLayers(f func(cfg *Config) bool) func() {
	skipLayers = f
	return func() { skipLayers = nil }
}

// SetCorrupt installs the fault-injection hook for a test and returns a
// function that removes it.
func SetCorrupt(f func(cfg *Config, out []float32, step int)) func() {
	corrupt = f
	return func() { corrupt = nil }
}

// SetTamperPiece installs the party fault hook (a party alters an output
// piece after committing to it) for a test and returns its remover.
func SetTamperPiece(f func(cfg *Config, role mpc.Role, first, step, ch int, piece []byte)) func() {
	tamperPiece = f
	return func() { tamperPiece = nil }
}

// SetTamperPeer installs the opening fault hook (a party alters an MPC_PEER
// body after hashing it) for a test and returns its remover.
func SetTamperPeer(f func(cfg *Config, role mpc.Role, first, step int, body []byte)) func() {
	tamperPeer = f
	return func() { tamperPeer = nil }
}

// SetMiscompute installs the party fault hook that alters a step's output
// share after computing it, before committing, and returns its remover.
func SetMiscompute(f func(cfg *Config, role mpc.Role, first, step int, y []uint64)) func() {
	miscompute = f
	return func() { miscompute = nil }
}

// SetTamperPrep installs the dealer fault hook (a dealer alters a PREP
// after committing to it) for a test and returns its remover.
func SetTamperPrep(f func(cfg *Config, first, step, ch int, prep []byte)) func() {
	tamperPrep = f
	return func() { tamperPrep = nil }
}

// SetMaxRedealt sets what a dealer keeps of what it dealt again for
// reveals and returns its remover.
func SetMaxRedealt(n int) func() {
	old := maxRedealt
	maxRedealt = n
	return func() { maxRedealt = old }
}

// SpareBufs reports how many closed sessions' buffers s keeps.
func SpareBufs(s *Service) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.spares)
}
