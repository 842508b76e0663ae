package directory_test

import (
	"crypto/ed25519"
	"fmt"
	"testing"
	"time"

	"github.com/cloudflare/circl/kem/xwing"
	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/directory/dirtest"
	"github.com/unfed/unfed/relay/keys"
)

// syntheticRelays returns n router status entries with real Ed25519
// identities and random-looking onion keys (their structure is not checked
// by the directory), shaped like a real network: every relay guard-capable,
// one in two compute, every one measured.
func syntheticRelays(n int) []directory.RouterStatus {
	rnd := dirtest.Rand("bench")
	out := make([]directory.RouterStatus, 0, n)
	for i := range n {
		seed := make([]byte, ed25519.SeedSize)
		rnd.Read(seed)
		id, _ := keys.IdentityFromSeed(seed)
		r := directory.RouterStatus{Fingerprint: id.Fingerprint(), Nickname: fmt.Sprintf("r%d", i), Published: t0, Identity: id.Public,
			Transports: []directory.Transport{{Name: "tcp", Addr: fmt.Sprintf("10.%d.%d.%d:9001", i>>16&255, i>>8&255, i&255)}},
			Roles:      []directory.Role{directory.RoleGuard}, Software: "unfed-relay/0.1.0",
			Flags:    []directory.Flag{directory.FlagGuard, directory.FlagRunning, directory.FlagStable, directory.FlagValid},
			Capacity: directory.Capacity{Sessions: 64, TokensPerSec: uint64(100 + i%50)}, PricePerToken: 3,
			Measured: uint64(2000 + i%3000)} // every authority measured every relay (spec §6.3)
		rnd.Read(r.Onion.X25519[:])
		r.Onion.XWing = make([]byte, xwing.PublicKeySize)
		rnd.Read(r.Onion.XWing)
		rnd.Read(r.LinkKey[:])
		if i%2 == 0 {
			r.Roles = []directory.Role{directory.RoleCompute, directory.RoleGuard}
			r.Compute = &directory.ComputeInfo{Model: testModel.ID, Layers: directory.LayerRange{First: 2, Last: 5}}
			r.Flags = append([]directory.Flag{directory.FlagCompute}, r.Flags...)
		}
		out = append(out, r)
	}
	return out // offlineVote sorts
}

func benchVotes(b *testing.B, n int) ([]*directory.Vote, []*directory.Signer, directory.AuthoritySet) {
	signers, set := offlineAuthorities(b, 3, false)
	relays := syntheticRelays(n)
	va := t0.Truncate(time.Hour).Add(time.Hour)
	var votes []*directory.Vote
	for _, s := range signers {
		votes = append(votes, offlineVote(b, s, set, va, map[string]int64{"guard-min-tps": 10}, relays...))
	}
	return votes, signers, set
}

// BenchmarkConsensusBuildSign10k: compute the consensus from three votes on
// 10,000 relays, and sign it by all three authorities.
func BenchmarkConsensusBuildSign10k(b *testing.B) {
	votes, signers, set := benchVotes(b, 10000)
	b.ResetTimer()
	var size int
	for b.Loop() {
		c, err := directory.ComputeConsensus(votes, set)
		if err != nil {
			b.Fatal(err)
		}
		c = signAll(b, c, signers...)
		size = len(c.Raw())
	}
	b.ReportMetric(float64(size), "doc-bytes")
}

// BenchmarkConsensusParseVerify10k: what a client does with a fetched
// consensus of 10,000 relays.
func BenchmarkConsensusParseVerify10k(b *testing.B) {
	votes, signers, set := benchVotes(b, 10000)
	c, err := directory.ComputeConsensus(votes, set)
	if err != nil {
		b.Fatal(err)
	}
	raw := signAll(b, c, signers...).Raw()
	now := c.ValidAfter.Add(time.Minute)
	b.SetBytes(int64(len(raw)))
	b.ResetTimer()
	for b.Loop() {
		u, err := directory.ParseConsensus(raw)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := u.Verify(set, now); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(raw)), "doc-bytes")
}

// BenchmarkVoteSignParse10k: an authority encoding and signing its vote,
// and a peer parsing and verifying it.
func BenchmarkVoteSignParse10k(b *testing.B) {
	votes, signers, set := benchVotes(b, 10000)
	v := *votes[0]
	b.ResetTimer()
	for b.Loop() {
		if err := signers[0].SignVote(&v); err != nil {
			b.Fatal(err)
		}
		u, err := directory.ParseVote(v.Raw())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := u.Verify(set, t0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(v.Raw())), "doc-bytes")
}
