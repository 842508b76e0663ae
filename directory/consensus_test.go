package directory_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/directory/dirtest"
	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/transports/onionaddr"
)

// offlineAuthorities makes n authorities with deterministic keys.
func offlineAuthorities(t testing.TB, n int, pq bool) ([]*directory.Signer, directory.AuthoritySet) {
	t.Helper()
	var signers []*directory.Signer
	var entries []directory.AuthorityEntry
	for i := range n {
		rnd := dirtest.Rand(fmt.Sprintf("authority-%d", i))
		id, err := keys.NewIdentity(rnd)
		if err != nil {
			t.Fatal(err)
		}
		s := &directory.Signer{Identity: id}
		var pub *mldsa65.PublicKey
		if pq {
			pub, s.MLDSA, err = mldsa65.GenerateKey(rnd)
			if err != nil {
				t.Fatal(err)
			}
		}
		signers = append(signers, s)
		entries = append(entries, directory.EntryFor(fmt.Sprintf("auth%d", i), fmt.Sprintf("127.0.0.1:%d", 7000+i), id, pub))
	}
	set, err := directory.NewAuthoritySet(entries, false)
	if err != nil {
		t.Fatal(err)
	}
	return signers, set
}

var testModel = directory.Model{ID: "stories260K", Name: "stories", Architecture: "llama", Layers: 5,
	Shards: []directory.LayerRange{{First: 0, Last: 2}, {First: 2, Last: 5}}, TensorHashRoot: strings.Repeat("ab", 32)}

func offlineVote(t testing.TB, s *directory.Signer, set directory.AuthoritySet, va time.Time, params map[string]int64, relays ...directory.RouterStatus) *directory.Vote {
	t.Helper()
	a := set.Lookup(s.Identity.Fingerprint())
	slices.SortFunc(relays, func(x, y directory.RouterStatus) int { return bytes.Compare(x.Fingerprint[:], y.Fingerprint[:]) })
	v := &directory.Vote{
		Authority: directory.DirSource{Name: a.Name, Fingerprint: a.Fingerprint, Address: a.Address},
		Methods:   directory.ConsensusMethods, Published: va.Add(-time.Minute), ValidAfter: va, FreshUntil: va.Add(time.Hour),
		ValidUntil: va.Add(3 * time.Hour), VoteDelay: 5 * time.Minute, DistDelay: 5 * time.Minute,
		KnownFlags: directory.KnownFlags, Params: params, Models: []directory.Model{testModel}, Relays: relays,
		MintKeys: []directory.MintKey{{Authority: a.Fingerprint, Epoch: 20000, Denom: 10, PKIX: vectorMintPKIX(t)}},
	}
	if err := s.SignVote(v); err != nil {
		t.Fatal(err)
	}
	return v
}

func statusOf(t testing.TB, r *dirtest.Relay, flags ...directory.Flag) directory.RouterStatus {
	t.Helper()
	b, err := r.Sign(t0)
	if err != nil {
		t.Fatal(err)
	}
	d, err := directory.ParseDescriptor(b, t0)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(flags)
	return directory.StatusOf(d, flags)
}

func signAll(t testing.TB, c *directory.Consensus, signers ...*directory.Signer) *directory.Consensus {
	t.Helper()
	var sigs []directory.Signature
	for _, s := range signers {
		ss, err := s.SignConsensus(c)
		if err != nil {
			t.Fatal(err)
		}
		sigs = append(sigs, ss...)
	}
	out, err := c.WithSignatures(sigs)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestComputeConsensusMajority(t *testing.T) {
	signers, set := offlineAuthorities(t, 4, false) // majority is 3 of 4
	va := t0.Truncate(time.Hour).Add(time.Hour)
	r1 := newRelay(t, "r1", directory.RoleGuard)
	r2 := newRelay(t, "r2", directory.RoleGuard)
	run, valid, guard := directory.FlagRunning, directory.FlagValid, directory.FlagGuard
	s1 := func(tps uint64, flags ...directory.Flag) directory.RouterStatus {
		s := statusOf(t, r1, flags...)
		s.Capacity.TokensPerSec = tps
		return s
	}
	newer := s1(100, valid, run, guard)
	newer.Published = t0.Add(time.Minute) // a newer descriptor seen by one authority
	votes := []*directory.Vote{
		offlineVote(t, signers[0], set, va, map[string]int64{"a": 1, "b": 7}, s1(100, valid, run, guard), statusOf(t, r2, valid, run)),
		offlineVote(t, signers[1], set, va, map[string]int64{"a": 3, "b": 9}, s1(50, valid, run), statusOf(t, r2, valid, run)),
		offlineVote(t, signers[2], set, va, map[string]int64{"a": 2}, newer),
		offlineVote(t, signers[3], set, va, map[string]int64{}),
	}
	c, err := directory.ComputeConsensus(votes, set)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Relays) != 1 || c.Relays[0].Fingerprint != r1.Fingerprint() {
		t.Fatalf("relays = %d; want only r1 (listed by 3 of 4; r2 by 2 of 4)", len(c.Relays))
	}
	got := c.Relays[0]
	if !slices.Equal(got.Flags, []directory.Flag{run, valid}) {
		t.Errorf("flags = %v; want Running Valid (Guard has 2 of 4 votes)", got.Flags)
	}
	if got.Capacity.TokensPerSec != 100 {
		t.Errorf("tokens/s = %d; want low median of 50,100,100 = 100", got.Capacity.TokensPerSec)
	}
	if !got.Published.Equal(t0) {
		t.Errorf("published = %s; want the variant two authorities listed", got.Published)
	}
	if v, ok := c.Params["a"]; !ok || v != 2 || len(c.Params) != 1 {
		t.Errorf("params = %v; want a=2 only (low median of 1,2,3; b set by 2 of 4)", c.Params)
	}
	if len(c.Models) != 1 || c.Models[0].ID != testModel.ID || len(c.Models[0].Shards) != 2 {
		t.Errorf("models = %+v", c.Models)
	}
	if len(c.Authorities) != 4 {
		t.Errorf("dir-sources = %d, want 4", len(c.Authorities))
	}

	// Deterministic: any order of the same votes gives the same bytes.
	for i := range 5 {
		shuffled := slices.Clone(votes)
		rand.New(rand.NewPCG(uint64(i), 1)).Shuffle(len(shuffled), func(a, b int) { shuffled[a], shuffled[b] = shuffled[b], shuffled[a] })
		c2, err := directory.ComputeConsensus(shuffled, set)
		if err != nil || !bytes.Equal(c2.Raw(), c.Raw()) {
			t.Fatalf("order %d: consensus differs (%v)", i, err)
		}
	}
	if _, err := directory.ComputeConsensus(votes[:2], set); !errors.Is(err, directory.ErrTooFewVotes) {
		t.Errorf("2 of 4 votes: got %v, want ErrTooFewVotes", err)
	}
}

// stageRelays returns party relays for two stages of testModel, one of
// them also a dealer, a dealer, and a party whose stage ends past the model.
func stageRelays(t testing.TB) (p1, p2, dealer, both *dirtest.Relay) {
	p1 = newRelay(t, "party-0-2", directory.RoleMPC)
	p1.Desc.MPC = &directory.MPCInfo{Model: testModel.ID, Layers: directory.LayerRange{First: 0, Last: 2}}
	p2 = newRelay(t, "party-2-5", directory.RoleMPC)
	p2.Desc.MPC = &directory.MPCInfo{Model: testModel.ID, Layers: directory.LayerRange{First: 2, Last: 5}}
	dealer = newRelay(t, "dealer", directory.RoleDealer)
	dealer.Desc.Dealer = &directory.DealerInfo{Model: testModel.ID}
	both = newRelay(t, "party-dealer", directory.RoleMPC, directory.RoleDealer, directory.RoleGuard)
	both.Desc.MPC = &directory.MPCInfo{Model: testModel.ID, Layers: directory.LayerRange{First: 0, Last: 5}}
	both.Desc.Dealer = &directory.DealerInfo{Model: testModel.ID}
	return p1, p2, dealer, both
}

// TestComputeConsensusStages: the consensus carries each party's mpc line
// and each dealer's dealer line with the flags a majority voted, and no
// pairing of any kind: any two parties of a range can serve a stage.
func TestComputeConsensusStages(t *testing.T) {
	signers, set := offlineAuthorities(t, 3, false)
	va := t0.Truncate(time.Hour).Add(time.Hour)
	p1, p2, dealer, both := stageRelays(t)
	R, V, M, D := directory.FlagRunning, directory.FlagValid, directory.FlagMPC, directory.FlagDealer
	var votes []*directory.Vote
	for i, s := range signers {
		dealerFlags := []directory.Flag{D, R, V}
		if i == 0 {
			dealerFlags = []directory.Flag{R, V} // one authority of three withholds Dealer
		}
		votes = append(votes, offlineVote(t, s, set, va, nil, statusOf(t, p1, M, R, V), statusOf(t, p2, M, R, V),
			statusOf(t, dealer, dealerFlags...), statusOf(t, both, D, M, R, V)))
	}
	// Votes carry the lines too.
	u, err := directory.ParseVote(votes[1].Raw())
	if err != nil {
		t.Fatal(err)
	}
	if v, err := u.Verify(set, t0); err != nil || len(v.Relays) != 4 {
		t.Fatalf("vote: %v", err)
	}
	c, err := directory.ComputeConsensus(votes, set)
	if err != nil {
		t.Fatal(err)
	}
	c = signAll(t, c, signers...)
	raw := string(c.Raw())
	for _, line := range []string{"\nmpc stories260K 0 2\n", "\nmpc stories260K 2 5\n", "\nmpc stories260K 0 5\n", "\ndealer stories260K\n",
		"\nroles dealer guard mpc\n", "\nknown-flags BadCompute Compute Dealer Guard MPC Running Stable Valid\n"} {
		if !strings.Contains(raw, line) {
			t.Errorf("consensus lacks %q", line[1:])
		}
	}
	if strings.Contains(raw, "mpc-pair") {
		t.Error("consensus still carries mpc-pair lines")
	}
	uc, err := directory.ParseConsensus(c.Raw())
	if err != nil {
		t.Fatal(err)
	}
	got, err := uc.Verify(set, va.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	want := map[*dirtest.Relay]struct {
		mpc    *directory.MPCInfo
		dealer *directory.DealerInfo
		flags  []directory.Flag
	}{
		p1:     {p1.Desc.MPC, nil, []directory.Flag{M, R, V}},
		p2:     {p2.Desc.MPC, nil, []directory.Flag{M, R, V}},
		dealer: {nil, dealer.Desc.Dealer, []directory.Flag{D, R, V}}, // 2 of 3 is a majority
		both:   {both.Desc.MPC, both.Desc.Dealer, []directory.Flag{D, M, R, V}},
	}
	for r, w := range want {
		e := got.Relay(r.Fingerprint())
		if e == nil {
			t.Fatalf("%s missing", r.Fingerprint())
		}
		if (e.MPC == nil) != (w.mpc == nil) || e.MPC != nil && *e.MPC != *w.mpc ||
			(e.Dealer == nil) != (w.dealer == nil) || e.Dealer != nil && *e.Dealer != *w.dealer || !slices.Equal(e.Flags, w.flags) {
			t.Errorf("%s: mpc %+v dealer %+v flags %v; want %+v %+v %v", r.Fingerprint(), e.MPC, e.Dealer, e.Flags, w.mpc, w.dealer, w.flags)
		}
	}
}

// TestConsensusParseStrict edits the relay entries of a consensus: parsing
// (before any signature check) refuses bad stage and dealer lines and
// relay addresses that are not IP literals.
func TestConsensusParseStrict(t *testing.T) {
	signers, set := offlineAuthorities(t, 3, false)
	va := t0.Truncate(time.Hour).Add(time.Hour)
	p1, _, dealer, _ := stageRelays(t)
	R, V, M, D := directory.FlagRunning, directory.FlagValid, directory.FlagMPC, directory.FlagDealer
	var votes []*directory.Vote
	for _, s := range signers {
		votes = append(votes, offlineVote(t, s, set, va, nil, statusOf(t, p1, M, R, V), statusOf(t, dealer, D, R, V)))
	}
	c, err := directory.ComputeConsensus(votes, set)
	if err != nil {
		t.Fatal(err)
	}
	good := c.Raw()
	edit := func(old, new string) []byte {
		if !bytes.Contains(good, []byte(old)) {
			t.Fatalf("no %q in the consensus", old)
		}
		return bytes.Replace(good, []byte(old), []byte(new), 1)
	}
	cases := []struct {
		name string
		doc  []byte
		want string // "" means parsed
	}{
		{"as computed", good, ""},
		{"stage up to 65535", edit("mpc stories260K 0 2\n", "mpc stories260K 0 65535\n"), ""},
		{"stage past 65535", edit("mpc stories260K 0 2\n", "mpc stories260K 0 65536\n"), "bad number"},
		{"empty stage", edit("mpc stories260K 0 2\n", "mpc stories260K 2 2\n"), "want 0 <= first < last"},
		{"stage model", edit("mpc stories260K 0 2\n", "mpc _x 0 2\n"), "bad mpc model"},
		{"old party line", edit("mpc stories260K 0 2\n", "mpc A 0ACB4104B8DC87A9B3DB9090FA396309DE0DC44D stories260K\n"), "bad number"},
		{"stage twice", edit("mpc stories260K 0 2\n", "mpc stories260K 0 2\nmpc stories260K 2 5\n"), "appears twice"},
		{"mpc role without line", edit("mpc stories260K 0 2\n", ""), "disagree"},
		{"dealer role without line", edit("dealer stories260K\n", ""), "disagree"},
		{"dealer line without role", edit("roles dealer\n", "roles guard\n"), "disagree"},
		{"dealer model", edit("dealer stories260K\n", "dealer a=b\n"), "bad dealer model"},
		{"dealer arguments", edit("dealer stories260K\n", "dealer\n"), "want at least 1 arguments"},
		{"DNS name", edit("t tcp 127.0.0.1:5000\n", "t tcp relay.example.org:5000\n"), "not an IP literal"},
		{"bracketed IPv4", edit("t tcp 127.0.0.1:5000\n", "t tcp [127.0.0.1]:5000\n"), "not canonical"},
		{"onion transport", edit("t tcp 127.0.0.1:5000\n", "t tcp 127.0.0.1:5000\nt onion 2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion:9001\n"), ""},
		{"onion host on tcp", edit("t tcp 127.0.0.1:5000\n", "t tcp 2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion:5000\n"), "longer than 64 bytes"},
		{"IP on onion", edit("t tcp 127.0.0.1:5000\n", "t onion 127.0.0.1:5000\n"), "needs a v3 onion address"},
		{"unspecified", edit("t tcp 127.0.0.1:5000\n", "t tcp [::]:5000\n"), "not a unicast address"},
		// Former items are unknown now, and ignored like any unknown header item.
		{"old mpc-pair line", edit("\nr ", "\nmpc-pair stories260K 0ACB4104B8DC87A9B3DB9090FA396309DE0DC44D 687843B71BF4F088B0BC47BD5DF9330CC6AA9C90\nr "), ""},
	}
	for _, tc := range cases {
		_, err := directory.ParseConsensus(tc.doc)
		if tc.want == "" && err != nil || tc.want != "" && (!errors.Is(err, directory.ErrBadDocument) || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
}

// threeSigned returns a consensus signed by all three of three authorities.
func threeSigned(t testing.TB, pq bool) (*directory.Consensus, []*directory.Signer, directory.AuthoritySet) {
	signers, set := offlineAuthorities(t, 3, pq)
	va := t0.Truncate(time.Hour).Add(time.Hour)
	params := map[string]int64{}
	if pq {
		params[directory.ParamPQSignatures] = 1
	}
	r := statusOf(t, newRelay(t, "r1", directory.RoleGuard), directory.FlagRunning, directory.FlagValid)
	var votes []*directory.Vote
	for i, s := range signers {
		r.Measured = []uint64{3000, 1000, 2000}[i] // the consensus weight is their low median, 2000
		votes = append(votes, offlineVote(t, s, set, va, params, r))
	}
	c, err := directory.ComputeConsensus(votes, set)
	if err != nil {
		t.Fatal(err)
	}
	return signAll(t, c, signers...), signers, set
}

func TestConsensusVerify(t *testing.T) {
	c, signers, set := threeSigned(t, false)
	now := c.ValidAfter.Add(time.Minute)
	verify := func(b []byte, at time.Time) error {
		u, err := directory.ParseConsensus(b)
		if err != nil {
			return err
		}
		_, err = u.Verify(set, at)
		return err
	}
	if err := verify(c.Raw(), now); err != nil {
		t.Fatalf("good consensus rejected: %v", err)
	}
	body := c.Raw()[:bytes.Index(c.Raw(), []byte("directory-signature"))]
	two := signAll(t, c, signers[0], signers[2])
	one := signAll(t, c, signers[1])
	_, otherSet := offlineAuthorities(t, 3, false)
	_ = otherSet
	outsider := &directory.Signer{Identity: mustIdentity(t, "outsider")}
	withOutsider := signAll(t, c, signers[0], outsider)

	flipSig := bytes.Clone(two.Raw())
	i := bytes.LastIndex(flipSig, []byte("directory-signature ed25519 "))
	// Change one base64 character inside the signature to another valid one.
	if j := i + len("directory-signature ed25519 ") + 41; flipSig[j] == 'A' {
		flipSig[j] = 'B'
	} else {
		flipSig[j] = 'A'
	}

	tampered := bytes.Replace(c.Raw(), []byte("s Running Valid\n"), []byte("s Guard Running Valid\n"), 1)

	if err := verify(two.Raw(), now); err != nil {
		t.Errorf("2 of 3 signatures rejected: %v", err)
	}
	cases := map[string][]byte{
		"no signatures":     body,
		"one signature":     one.Raw(),
		"bad signature":     flipSig,
		"tampered body":     tampered,
		"outsider's second": withOutsider.Raw(),
	}
	for name, b := range cases {
		if err := verify(b, now); !errors.Is(err, directory.ErrNotEnoughSignatures) {
			t.Errorf("%s: got %v, want ErrNotEnoughSignatures", name, err)
		}
	}
	if err := verify(c.Raw(), c.ValidUntil); !errors.Is(err, directory.ErrExpired) {
		t.Errorf("at valid-until: got %v, want ErrExpired", err)
	}
	if err := verify(c.Raw(), c.ValidAfter.Add(-time.Hour)); !errors.Is(err, directory.ErrNotYetValid) {
		t.Errorf("an hour early: got %v, want ErrNotYetValid", err)
	}
}

func mustIdentity(t testing.TB, seed string) *keys.Identity {
	id, err := keys.NewIdentity(dirtest.Rand(seed))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestConsensusPQSignatures(t *testing.T) {
	c, _, set := threeSigned(t, true)
	now := c.ValidAfter.Add(time.Minute)
	if n := len(c.Signatures); n != 6 {
		t.Fatalf("%d signatures, want 3 Ed25519 + 3 ML-DSA-65", n)
	}
	u, err := directory.ParseConsensus(c.Raw())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Verify(set, now); err != nil {
		t.Fatalf("hybrid-signed consensus rejected: %v", err)
	}
	// Strip the ML-DSA signatures: the document's parameter demands them.
	var edOnly []directory.Signature
	for _, s := range c.Signatures {
		if s.Alg == directory.SigEd25519 {
			edOnly = append(edOnly, s)
		}
	}
	stripped, err := c.WithSignatures(edOnly)
	if err != nil {
		t.Fatal(err)
	}
	u, err = directory.ParseConsensus(stripped.Raw())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Verify(set, now); !errors.Is(err, directory.ErrNotEnoughSignatures) {
		t.Errorf("Ed25519-only copy of a PQ consensus: got %v, want ErrNotEnoughSignatures", err)
	}
	// A client that requires PQ refuses an Ed25519-only consensus whatever
	// its parameters say.
	plain, _, plainSet := threeSigned(t, false)
	plainSet.RequirePQ = true
	u, _ = directory.ParseConsensus(plain.Raw())
	if _, err := u.Verify(plainSet, now); !errors.Is(err, directory.ErrNotEnoughSignatures) {
		t.Errorf("RequirePQ with Ed25519 only: got %v, want ErrNotEnoughSignatures", err)
	}
}

func TestVoteVerify(t *testing.T) {
	signers, set := offlineAuthorities(t, 3, false)
	va := t0.Truncate(time.Hour).Add(time.Hour)
	v := offlineVote(t, signers[1], set, va, map[string]int64{"x": 1}, statusOf(t, newRelay(t, "r", directory.RoleGuard), directory.FlagValid))
	u, err := directory.ParseVote(v.Raw())
	if err != nil {
		t.Fatal(err)
	}
	got, err := u.Verify(set, t0)
	if err != nil || got.Authority.Fingerprint != signers[1].Identity.Fingerprint() || len(got.Relays) != 1 {
		t.Fatalf("vote: %v", err)
	}
	forged := bytes.Replace(v.Raw(), []byte("params x=1"), []byte("params x=2"), 1)
	if u, err := directory.ParseVote(forged); err != nil {
		t.Fatal(err)
	} else if _, err := u.Verify(set, t0); err == nil {
		t.Error("forged vote verified")
	}
	_, otherSet := offlineAuthorities(t, 1, false)
	otherSet.Authorities[0].Fingerprint[0] ^= 1
	if _, err := u.Verify(otherSet, t0); err == nil {
		t.Error("vote from an unconfigured authority verified")
	}
}

// checkParsedStatus asserts what the parser guarantees of every router
// status entry it accepts.
func checkParsedStatus(t *testing.T, r *directory.RouterStatus) {
	t.Helper()
	if (r.MPC != nil) != r.HasRole(directory.RoleMPC) || (r.Dealer != nil) != r.HasRole(directory.RoleDealer) {
		t.Fatalf("entry %s: roles %v with mpc %+v dealer %+v", r.Fingerprint, r.Roles, r.MPC, r.Dealer)
	}
	if m := r.MPC; m != nil && (m.Model == "" || m.Layers.First < 0 || m.Layers.First >= m.Layers.Last || m.Layers.Last > directory.MaxStageLayer) {
		t.Fatalf("entry %s: accepted mpc line %+v", r.Fingerprint, m)
	}
	for _, tr := range r.Transports {
		host, _, err := net.SplitHostPort(tr.Addr)
		if tr.Name == directory.OnionTransport {
			if _, oerr := onionaddr.Parse(host); err != nil || oerr != nil {
				t.Fatalf("entry %s: accepted onion transport address %q", r.Fingerprint, tr.Addr)
			}
			continue
		}
		if ip := net.ParseIP(host); err != nil || ip == nil || ip.IsUnspecified() {
			t.Fatalf("entry %s: accepted transport address %q", r.Fingerprint, tr.Addr)
		}
	}
}

func FuzzParseConsensus(f *testing.F) {
	c, signers, set := threeSigned(f, false)
	f.Add(c.Raw())
	f.Add(c.Raw()[:len(c.Raw())/2])
	f.Add(bytes.Replace(c.Raw(), []byte("known-flags "), []byte("x-new 1\nknown-flags "), 1))
	f.Add([]byte("network-status-version 1\nvote-status consensus\n"))
	// A consensus with party, dealer and multi-transport entries, signed.
	p1, p2, dealer, both := stageRelays(f)
	full := fullRelay(f)
	R, V, M, D := directory.FlagRunning, directory.FlagValid, directory.FlagMPC, directory.FlagDealer
	var votes []*directory.Vote
	for _, s := range signers {
		votes = append(votes, offlineVote(f, s, set, c.ValidAfter, nil, statusOf(f, p1, M, R, V), statusOf(f, p2, M, R, V),
			statusOf(f, dealer, D, R, V), statusOf(f, both, D, M, R, V), statusOf(f, full, D, M, R, V)))
	}
	stages, err := directory.ComputeConsensus(votes, set)
	if err != nil {
		f.Fatal(err)
	}
	stages = signAll(f, stages, signers...)
	f.Add(stages.Raw())
	f.Add(bytes.Replace(stages.Raw(), []byte("mpc stories260K 0 2\n"), []byte("mpc stories260K 2 2\n"), 1))
	f.Add(bytes.Replace(stages.Raw(), []byte("t tcp 127.0.0.1:5000\n"), []byte("t tcp relay.example.org:5000\n"), 1))
	f.Add(bytes.Replace(stages.Raw(), []byte("t tcp 127.0.0.1:5000\n"), []byte("t tcp 127.0.0.1:5000\nt onion 2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion:9001\n"), 1))
	// Weights (method 2): measured, unmeasured, and edited w lines.
	w := []byte(" Weight=2000\n")
	f.Add(bytes.Replace(c.Raw(), w, []byte(" Weight=2000 Unmeasured=1 Bandwidth=7\n"), 1))
	f.Add(bytes.Replace(c.Raw(), w, []byte(" Unmeasured=1 Weight=0\n"), 1))
	f.Add(bytes.Replace(c.Raw(), w, []byte(" Measured=4294967295\n"), 1))
	f.Add(bytes.Replace(c.Raw(), []byte("consensus-method 5\n"), []byte("consensus-method 1\n"), 1))
	// Mint keys (method 5): a repeated line, a bad key, an unknown authority.
	mk := c.Raw()[bytes.Index(c.Raw(), []byte("mint-key ")):]
	mk = mk[:bytes.IndexByte(mk, '\n')+1]
	f.Add(bytes.Replace(c.Raw(), mk, append(slices.Clone(mk), mk...), 1))
	f.Add(bytes.Replace(c.Raw(), mk, []byte("mint-key "+c.Authorities[0].Fingerprint.String()+" 1 1 MIIB\n"), 1))
	f.Add(bytes.Replace(c.Raw(), mk, []byte("mint-key 0000000000000000000000000000000000000000 1 1 MIIB\n"), 1))
	now := c.ValidAfter.Add(time.Minute)
	f.Fuzz(func(t *testing.T, b []byte) {
		u, err := directory.ParseConsensus(b)
		if err != nil {
			return
		}
		cons := u.Unchecked()
		for i := range cons.Relays {
			r := &cons.Relays[i]
			checkParsedStatus(t, r)
			if r.Measured != 0 || r.Unmeasured && r.Weight == 0 || r.Weight > directory.MaxWeight ||
				(cons.Method >= directory.WeightsMethod) != (r.Weight != 0) {
				t.Fatalf("method-%d entry %s: accepted Measured %d Weight %d Unmeasured %v", cons.Method, r.Fingerprint, r.Measured, r.Weight, r.Unmeasured)
			}
		}
		checkParsedMintKeys(t, cons.Method, cons.Authorities, cons.MintKeys)
		if got, err := u.Verify(set, now); err == nil && !bytes.Equal(got.Raw(), b) {
			t.Fatal("verified consensus does not keep its bytes")
		}
	})
}

func FuzzParseVote(f *testing.F) {
	signers, set := offlineAuthorities(f, 3, false)
	va := t0.Truncate(time.Hour).Add(time.Hour)
	v := offlineVote(f, signers[0], set, va, map[string]int64{"a": -1}, statusOf(f, fullRelay(f), directory.FlagValid))
	f.Add(v.Raw())
	f.Add(bytes.Replace(v.Raw(), []byte("vote-status vote"), []byte("vote-status consensus"), 1))
	f.Add([]byte("network-status-version 1\nvote-status vote\ndirectory-footer\n"))
	p1, _, dealer, _ := stageRelays(f)
	stages := offlineVote(f, signers[1], set, va, nil, statusOf(f, p1, directory.FlagMPC), statusOf(f, dealer, directory.FlagDealer))
	f.Add(stages.Raw())
	f.Add(bytes.Replace(stages.Raw(), []byte("\ndealer stories260K\n"), []byte("\n"), 1))
	measured := statusOf(f, fullRelay(f), directory.FlagValid)
	measured.Measured = 4321
	mv := offlineVote(f, signers[2], set, va, nil, measured)
	f.Add(mv.Raw())
	f.Add(bytes.Replace(mv.Raw(), []byte(" Measured=4321\n"), []byte(" Measured=4321 Weight=1\n"), 1))
	f.Fuzz(func(t *testing.T, b []byte) {
		u, err := directory.ParseVote(b)
		if err != nil {
			return
		}
		for i := range u.Unchecked().Relays {
			r := &u.Unchecked().Relays[i]
			checkParsedStatus(t, r)
			if r.Weight != 0 || r.Unmeasured || r.Measured > directory.MaxWeight {
				t.Fatalf("vote entry %s: accepted Measured %d Weight %d Unmeasured %v", r.Fingerprint, r.Measured, r.Weight, r.Unmeasured)
			}
		}
		checkParsedMintKeys(t, directory.MintKeyMethod, []directory.DirSource{u.Unchecked().Authority}, u.Unchecked().MintKeys)
		u.Verify(set, t0)
	})
}
