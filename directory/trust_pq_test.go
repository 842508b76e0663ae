package directory_test

import (
	"testing"

	"github.com/unfed/unfed/directory"
)

// TestRequirePQSetting: auto requires ML-DSA-65 signatures exactly when
// every authority lists an ML-DSA key; on and off override; anything else is
// refused.
func TestRequirePQSetting(t *testing.T) {
	pq := []directory.AuthorityEntry{{Name: "a", MLDSA65: "k"}, {Name: "b", MLDSA65: "k"}}
	mixed := []directory.AuthorityEntry{{Name: "a", MLDSA65: "k"}, {Name: "b"}}
	for _, c := range []struct {
		setting string
		entries []directory.AuthorityEntry
		want    bool
	}{
		{"", pq, true}, {"auto", pq, true}, {"auto", mixed, false}, {"", nil, false},
		{"on", mixed, true}, {"off", pq, false},
	} {
		got, err := directory.RequirePQFor(c.setting, c.entries)
		if err != nil || got != c.want {
			t.Errorf("RequirePQFor(%q, %d entries): %v, %v; want %v", c.setting, len(c.entries), got, err, c.want)
		}
	}
	if _, err := directory.RequirePQFor("yes", pq); err == nil {
		t.Error("require_pq_signatures yes accepted")
	}
}
