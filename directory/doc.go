// Package directory owns UNFED's directory protocol (spec/04-directory.md),
// modelled on Tor's dir-spec: who is in the network, decided by several
// authorities and verifiable by anyone.
//
// Documents, all in the canonical keyword-line meta-format of directory/doc:
//
//   - relay descriptors (descriptor.go), signed by the relay's Ed25519
//     identity: keys, addresses per transport, roles, model layer range,
//     confidential stage (mpc) or dealer model, capacity and price;
//   - votes and consensuses (status.go, status_parse.go, consensus.go),
//     signed by authorities with Ed25519 and, when the pq-signatures
//     parameter is set, ML-DSA-65 alongside (trust.go);
//   - detached consensus signatures exchanged between authorities
//     (signatures.go).
//
// The consensus algorithm (algorithm.go; method 2 adds path-selection
// weights from the authorities' measurements) and the flag rules (flags.go)
// are pure functions. A Prober tests reachability; a Measurer (prober.go,
// relay.LinkProber in production) also measures relays for their weights. Authority (authority.go, schedule.go, server.go) runs the
// voting schedule and the HTTP endpoints; RunAuthority is cmd/dirauth's entry
// point. Relays use Publisher to upload their descriptor and Cache to serve
// the consensus; clients and relays use Fetcher and Store to keep a verified
// one. A parsed consensus is an Unverified[Consensus] until Verify checks it
// against an AuthoritySet and the clock. ConsensusShow and DescriptorShow back
// the `unfed consensus show` and `unfed descriptor show` commands.
//
// Fakes for tests live in directory/dirtest.
package directory
