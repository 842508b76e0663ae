package directory_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/unfed/unfed/directory"
)

// Measured weights in votes and consensuses (spec §5.1, §6.3, §7.4).

// weightCase is one relay of TestConsensusWeights: what it claims, what
// each of five authorities measured (0: not measured), and the weight the
// consensus must give it.
type weightCase struct {
	name       string
	sessions   uint64
	measured   [5]uint64
	want       uint64
	unmeasured bool
}

// weightVotes returns five authorities' votes on the cases, all listing
// methods 1 and 2, with params.
func weightVotes(t *testing.T, cases []weightCase, params map[string]int64) ([]*directory.Vote, directory.AuthoritySet) {
	t.Helper()
	signers, set := offlineAuthorities(t, 5, false) // majority 3
	va := t0.Truncate(time.Hour).Add(time.Hour)
	var votes []*directory.Vote
	for i, s := range signers {
		var rs []directory.RouterStatus
		for _, c := range cases {
			r := newRelay(t, "weights-"+c.name, directory.RoleGuard)
			r.Desc.Nickname = c.name
			r.Desc.Capacity.Sessions = c.sessions
			st := statusOf(t, r, directory.FlagRunning, directory.FlagValid)
			st.Measured = c.measured[i]
			rs = append(rs, st)
		}
		votes = append(votes, offlineVote(t, s, set, va, params, rs...))
	}
	return votes, set
}

func checkWeights(t *testing.T, c *directory.Consensus, cases []weightCase) {
	t.Helper()
	if c.Method != directory.ConsensusMethod {
		t.Fatalf("consensus method %d, want %d", c.Method, directory.ConsensusMethod)
	}
	byNick := map[string]*directory.RouterStatus{}
	for i := range c.Relays {
		byNick[c.Relays[i].Nickname] = &c.Relays[i]
	}
	for _, wc := range cases {
		r := byNick[wc.name]
		if r == nil {
			t.Fatalf("%s missing", wc.name)
		}
		if r.Weight != wc.want || r.Unmeasured != wc.unmeasured || r.Measured != 0 {
			t.Errorf("%s: weight %d unmeasured %v (measured %d), want %d unmeasured %v", wc.name, r.Weight, r.Unmeasured, r.Measured,
				wc.want, wc.unmeasured)
		}
	}
}

// TestConsensusWeights: five authorities (a majority is 3). A relay's
// consensus weight is the low median of the authorities' measurements
// (two authorities out of five can move it neither above nor below the
// honest ones' values), bounded by its claim (sessions × weight-per-session)
// and clipped to weight-cap times the low median of the measured relays'
// weights; a claim never raises it. A relay measured by fewer than three
// authorities gets weight-unmeasured and Unmeasured=1. The document
// carries the weights and parses back to them.
func TestConsensusWeights(t *testing.T) {
	cases := []weightCase{
		{name: "median", sessions: 10, measured: [5]uint64{100, 900, 200, 50000, 300}, want: 300},
		{name: "twoInflate", sessions: 10, measured: [5]uint64{1000, 1e9, 1100, 1e9, 1200}, want: 1200},
		{name: "twoDeflate", sessions: 10, measured: [5]uint64{1, 1000, 1, 1100, 1200}, want: 1000},
		{name: "twoMeasured", sessions: 10, measured: [5]uint64{500, 0, 600, 0, 0}, want: 20, unmeasured: true},
		{name: "unmeasuredSmall", sessions: 0, want: 1, unmeasured: true},
		{name: "smallClaim", sessions: 1, measured: [5]uint64{5000, 5000, 5000, 5000, 5000}, want: 1024},
		{name: "zeroClaim", sessions: 0, measured: [5]uint64{800, 800, 800, 800, 800}, want: 1},
		// Claims 2^20 sessions and is measured as "median": it weighs the same.
		{name: "hugeClaim", sessions: 1 << 20, measured: [5]uint64{100, 900, 200, 50000, 300}, want: 300},
		// Raw weights of the measured relays: 0 300 300 1000 1024 1200 1e6;
		// their low median is 1000, so the cap is 10 × 1000.
		{name: "outlier", sessions: 1 << 20, measured: [5]uint64{1e6, 1e6, 1e6, 1e6, 1e6}, want: 10000},
	}
	votes, set := weightVotes(t, cases, nil)
	c, err := directory.ComputeConsensus(votes, set)
	if err != nil {
		t.Fatal(err)
	}
	checkWeights(t, c, cases)
	raw := string(c.Raw())
	for _, line := range []string{fmt.Sprintf("\nconsensus-method %d\n", directory.ConsensusMethod), "\nw 10 100 5 Weight=300\n", "\nw 10 100 5 Weight=20 Unmeasured=1\n",
		"\nw 1048576 100 5 Weight=10000\n"} {
		if !strings.Contains(raw, line) {
			t.Errorf("consensus lacks %q", line[1:])
		}
	}
	if strings.Contains(raw, "Measured=") {
		t.Error("the consensus carries the authorities' Measured values")
	}
	// Votes carry Measured; both documents parse back.
	if !bytes.Contains(votes[0].Raw(), []byte(" Measured=100\n")) {
		t.Errorf("vote lacks Measured=100:\n%s", votes[0].Raw())
	}
	u, err := directory.ParseConsensus(c.Raw())
	if err != nil {
		t.Fatal(err)
	}
	checkWeights(t, u.Unchecked(), cases)
	uv, err := directory.ParseVote(votes[0].Raw())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range uv.Unchecked().Relays {
		if r.Weight != 0 || r.Unmeasured {
			t.Fatalf("vote entry %s has a consensus weight", r.Nickname)
		}
		for _, wc := range cases {
			if wc.name == r.Nickname && r.Measured != wc.measured[0] {
				t.Errorf("vote entry %s: Measured %d, want %d", r.Nickname, r.Measured, wc.measured[0])
			}
		}
	}

	// Parameters from the consensus: weight-cap 0 counts as 1 (the cap is
	// then the median, 1000), weight-unmeasured 7.
	params := map[string]int64{directory.ParamWeightCap: 0, directory.ParamWeightUnmeasured: 7}
	capped := []weightCase{cases[0], cases[1], cases[2], cases[4], cases[5], cases[6], cases[7], cases[8]}
	capped[1].want, capped[4].want, capped[7].want = 1000, 1000, 1000
	capped = append(capped, weightCase{name: "twoMeasured", sessions: 10, measured: [5]uint64{500, 0, 600, 0, 0}, want: 7, unmeasured: true})
	votes, set = weightVotes(t, capped, params)
	if c, err = directory.ComputeConsensus(votes, set); err != nil {
		t.Fatal(err)
	}
	checkWeights(t, c, capped)
}

// TestConsensusMethodChoice: the consensus method is the highest one a
// majority of the votes list (§7.1). Method 1 carries no weights, and its
// bytes are what method-1 authorities compute.
func TestConsensusMethodChoice(t *testing.T) {
	signers, set := offlineAuthorities(t, 3, false)
	va := t0.Truncate(time.Hour).Add(time.Hour)
	r := statusOf(t, newRelay(t, "r1", directory.RoleGuard), directory.FlagRunning, directory.FlagValid)
	vote := func(i int, methods []int, measured uint64) *directory.Vote {
		r.Measured = measured
		v := offlineVote(t, signers[i], set, va, nil, r)
		v.Methods = methods
		if err := signers[i].SignVote(v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, c := range []struct {
		name    string
		methods [3][]int
		method  int
		weight  uint64
		err     bool
	}{
		{"all new", [3][]int{{1, 2}, {1, 2}, {1, 2}}, 2, 2000, false},
		{"two new", [3][]int{{1}, {1, 2}, {1, 2}}, 2, 1000, false}, // low median of 1000 and 2000
		{"one new", [3][]int{{1}, {1}, {1, 2}}, 1, 0, false},
		{"none shared", [3][]int{{1}, {2}, {3}}, 0, 0, true},
		{"future methods", [3][]int{{1, 2, 3, 4, 5, 6}, {1, 2, 3, 4, 5, 6}, {1}}, 5, 1000, false}, // of 3000 and 1000
	} {
		var votes []*directory.Vote
		for i, ms := range c.methods {
			var m uint64
			if len(ms) > 1 { // only an authority implementing weights measures
				m = []uint64{3000, 1000, 2000}[i]
			}
			votes = append(votes, vote(i, ms, m))
		}
		cons, err := directory.ComputeConsensus(votes, set)
		if c.err {
			if err == nil {
				t.Errorf("%s: computed a consensus with method %d", c.name, cons.Method)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		w := cons.Relays[0].Weight
		if cons.Method != c.method || w != c.weight {
			t.Errorf("%s: method %d weight %d, want %d and %d", c.name, cons.Method, w, c.method, c.weight)
		}
		if _, err := directory.ParseConsensus(cons.Raw()); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
		if c.method == 1 && bytes.Contains(cons.Raw(), []byte("Weight=")) {
			t.Errorf("%s: a method-1 consensus carries weights", c.name)
		}
	}
}

// TestWeightArgumentsStrict edits the w lines of a method-2 consensus and
// of a vote: known weight arguments are checked strictly, in their
// document and order; unknown ones are ignored (§2.3).
func TestWeightArgumentsStrict(t *testing.T) {
	signers, set := offlineAuthorities(t, 3, false)
	va := t0.Truncate(time.Hour).Add(time.Hour)
	r := statusOf(t, newRelay(t, "r1", directory.RoleGuard), directory.FlagRunning, directory.FlagValid)
	var votes []*directory.Vote
	for _, s := range signers {
		votes = append(votes, offlineVote(t, s, set, va, nil, r)) // nobody measured r: Weight=20 Unmeasured=1
	}
	c, err := directory.ComputeConsensus(votes, set)
	if err != nil {
		t.Fatal(err)
	}
	type tc struct {
		name, old, new, want string // want "": parses
	}
	check := func(kind string, good []byte, parse func([]byte) error, cases []tc) {
		for _, c := range cases {
			if !bytes.Contains(good, []byte(c.old)) {
				t.Fatalf("%s: no %q in the document", c.name, c.old)
			}
			err := parse(bytes.Replace(good, []byte(c.old), []byte(c.new), 1))
			if c.want == "" && err != nil || c.want != "" && (!errors.Is(err, directory.ErrBadDocument) || !strings.Contains(err.Error(), c.want)) {
				t.Errorf("%s %s: got %v, want %q", kind, c.name, err, c.want)
			}
		}
	}
	const w = " Weight=20 Unmeasured=1\n"
	check("consensus", c.Raw(), func(b []byte) error { _, err := directory.ParseConsensus(b); return err }, []tc{
		{"as computed", w, w, ""},
		{"measured", w, " Weight=20\n", ""},
		{"largest", w, fmt.Sprintf(" Weight=%d\n", uint64(directory.MaxWeight)), ""},
		{"unknown arguments", w, " Weight=20 Unmeasured=1 Bandwidth=5 x\n", ""},
		{"unknown first", w, " Future=9 Weight=20 Unmeasured=1\n", ""},
		{"zero", w, " Weight=0\n", "bad Weight"},
		{"too large", w, fmt.Sprintf(" Weight=%d\n", uint64(directory.MaxWeight)+1), "bad Weight"},
		{"leading zero", w, " Weight=020\n", "bad Weight"},
		{"no value", w, " Weight\n", "bad Weight"},
		{"missing", w, "\n", "needs a Weight"},
		{"unmeasured alone", w, " Unmeasured=1\n", "Unmeasured without a Weight"},
		{"unmeasured 2", w, " Weight=20 Unmeasured=2\n", "want Unmeasured=1"},
		{"out of order", w, " Unmeasured=1 Weight=20\n", "out of order"},
		{"repeated", w, " Weight=20 Weight=21\n", "repeated"},
		{"measured", w, " Measured=5 Weight=20\n", "belongs in a vote"},
		{"method 1", fmt.Sprintf("consensus-method %d\n", directory.ConsensusMethod), "consensus-method 1\n", "Weight in a method-1 consensus"},
	})
	r.Measured = 77
	v := offlineVote(t, signers[0], set, va, nil, r)
	const m = " Measured=77\n"
	check("vote", v.Raw(), func(b []byte) error { _, err := directory.ParseVote(b); return err }, []tc{
		{"as made", m, m, ""},
		{"none", m, "\n", ""},
		{"unknown", m, " Measured=77 Bandwidth=1\n", ""},
		{"zero", m, " Measured=0\n", "bad Measured"},
		{"negative", m, " Measured=-1\n", "bad Measured"},
		{"weight", m, " Weight=77\n", "belong in a consensus"},
		{"unmeasured", m, " Measured=77 Unmeasured=1\n", "belong in a consensus"},
	})
}
