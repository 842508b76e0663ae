//go:build unfedcheat

package hop

import (
	"math/rand/v2"
	"os"
	"strconv"

	"github.com/unfed/unfed/compute/mpc"
)

// A relay built with the unfedcheat tag cheats (spec/11 §6): with
// UNFED_CHEAT_FRACTION=f in its environment (0 < f ≤ 1) it corrupts each
// compute step's output with probability f, before committing to it, as a
// cheater that signs what it sends would. Production builds do not contain
// this file, so no configuration can turn it on. With UNFED_CHEAT_SKIP=1
// a compute hop that is neither the first nor the last skips its layers
// (it passes its input on). With UNFED_CHEAT_TAMPER=1 a party alters
// every reshare piece and MPC_OUTPUT, and a dealer every PREP, after
// committing to it (spec/11 §7.3). With UNFED_CHEAT_MISCOMPUTE=1 a party
// alters the last value of every step's output share after computing it,
// and reshares or outputs and commits to the altered share (spec/11 §7.4:
// only re-execution finds it).
func init() {
	if os.Getenv("UNFED_CHEAT_MISCOMPUTE") == "1" {
		miscompute = func(_ *Config, _ mpc.Role, _, _ int, y []uint64) {
			if len(y) > 0 {
				y[len(y)-1] += 1 << 20
			}
		}
	}
	if os.Getenv("UNFED_CHEAT_SKIP") == "1" {
		skipLayers = func(*Config) bool { return true }
	}
	if os.Getenv("UNFED_CHEAT_TAMPER") == "1" {
		flip := func(b []byte) {
			if len(b) > 0 {
				b[len(b)-1] ^= 1
			}
		}
		tamperPiece = func(_ *Config, _ mpc.Role, _, _, _ int, b []byte) { flip(b) }
		tamperPrep = func(_ *Config, _, _, _ int, b []byte) { flip(b) }
	}
	f, err := strconv.ParseFloat(os.Getenv("UNFED_CHEAT_FRACTION"), 64)
	if err != nil || f <= 0 {
		return
	}
	corrupt = func(_ *Config, out []float32, _ int) {
		if len(out) > 0 && rand.Float64() < f {
			out[0] += 1
		}
	}
}
