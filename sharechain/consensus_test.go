package sharechain

import (
	"testing"
	"time"

	"github.com/unfed/unfed/directory"
)

// TestPricedUnits: a credit pays ⌊denom × 10^6 / price⌋ positions, never
// more than denom × UnitsPerCredit nor MaxUnits; a free relay is bounded by
// those limits only.
func TestPricedUnits(t *testing.T) {
	p := DefaultParams("t") // UnitsPerCredit 1000
	for _, c := range []struct{ denom, price, want uint64 }{
		{1, 1000, 1000},
		{1, 3000, 333},
		{10, 1000, 10000},
		{1, 500, 1000}, // capped by units-per-credit
		{1, 0, 1000},
		{1, 2_000_000, 0}, // one unit does not pay one position
		{1 << 30, 1, MaxUnits},
		{1 << 62, 7, MaxUnits},
	} {
		if got := p.PricedUnits(c.denom, c.price); uint64(got) != c.want {
			t.Errorf("denom %d at %d: %d units, want %d", c.denom, c.price, got, c.want)
		}
	}
}

// TestParamsFromConsensus: the chain takes the consensus's economy
// parameters, the defaults where it sets none, and at least 1 for each.
func TestParamsFromConsensus(t *testing.T) {
	c := &directory.Consensus{Params: map[string]int64{directory.ParamPPLNSWindow: 50, directory.ParamPPLNSMaturity: 0,
		directory.ParamMintEpoch: 600}}
	p := ParamsFromConsensus(c)
	if p.Window != 50 || p.Maturity != 1 || p.EpochSeconds != 600 || p.UnitsPerCredit != 1000 || p.Network != DefaultNetwork {
		t.Fatalf("params %+v", p)
	}
	if e := p.Epoch(uint64(time.Unix(1200, 0).UnixMilli())); e != 2 {
		t.Fatalf("epoch %d", e)
	}
}
