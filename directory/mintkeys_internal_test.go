package directory

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/unfed/unfed/relay/keys"
)

// TestCheckMintKeys: what an authority's mint hands it for its vote is
// stamped with its own fingerprint, sorted, and refused when it breaks a
// limit (so a broken mint fails the vote loudly instead of publishing keys
// relays would reject).
func TestCheckMintKeys(t *testing.T) {
	b, err := os.ReadFile("../spec/vectors/economy/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		PKIX string `json:"mint_key_pkix"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	der, _ := hex.DecodeString(v.PKIX)
	self := keys.Fingerprint{1}
	in := []MintKey{{Epoch: 2, Denom: 1, PKIX: der}, {Authority: keys.Fingerprint{9}, Epoch: 1, Denom: 10, PKIX: der}, {Epoch: 1, Denom: 1, PKIX: der}}
	out, err := checkMintKeys(in, self)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 3 || out[0].Epoch != 1 || out[0].Denom != 1 || out[1].Denom != 10 || out[2].Epoch != 2 {
		t.Fatalf("not sorted: %v", out)
	}
	for _, k := range out {
		if k.Authority != self {
			t.Fatalf("key %v not stamped with the authority", k)
		}
	}
	if in[1].Authority != (keys.Fingerprint{9}) {
		t.Fatal("the caller's slice was modified")
	}
	many := make([]MintKey, MaxMintKeysPerAuthority+1)
	for i := range many {
		many[i] = MintKey{Epoch: uint64(i), Denom: 1, PKIX: der}
	}
	for name, c := range map[string]struct {
		ks   []MintKey
		want string
	}{
		"repeated":  {[]MintKey{{Epoch: 1, Denom: 1, PKIX: der}, {Epoch: 1, Denom: 1, PKIX: der}}, "two mint keys"},
		"denom 0":   {[]MintKey{{Epoch: 1, PKIX: der}}, "denomination 0"},
		"bad key":   {[]MintKey{{Epoch: 1, Denom: 1, PKIX: der[:20]}}, "mint key"},
		"too many":  {many, "at most 48"},
		"too large": {[]MintKey{{Epoch: 1, Denom: MaxMintDenom + 1, PKIX: der}}, "denomination"},
	} {
		if _, err := checkMintKeys(c.ks, self); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
}
