//go:build unfedcheat

package hop

import (
	"math/rand/v2"
	"os"
	"strconv"
)

// A relay built with the unfedcheat tag cheats (spec/11 §6): with
// UNFED_CHEAT_FRACTION=f in its environment (0 < f ≤ 1) it corrupts each
// compute step's output with probability f, before committing to it, as a
// cheater that signs what it sends would. Production builds do not contain
// this file, so no configuration can turn it on. With UNFED_CHEAT_SKIP=1
// a compute hop that is neither the first nor the last skips its layers
// (it passes its input on).
func init() {
	if os.Getenv("UNFED_CHEAT_SKIP") == "1" {
		skipLayers = func(*Config) bool { return true }
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
