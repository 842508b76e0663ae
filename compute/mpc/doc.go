// Package mpc implements UNFED's MPC entry stage (DESIGN §4, spec/05-mpc.md):
// two parties A and B evaluate the embedding lookup and the first transformer
// block of a llama/qwen2 model on additive secret shares over Z_2^64, so that
// neither learns the token ids. The client acts as the dealer: per token it
// sends each party a DPF key of the token id (package dpf) and the correlated
// randomness (Beaver triples, truncation pairs, masked-LUT DPF keys) for the
// step; nothing it sends depends on the token except the DPF keys, which are
// pseudorandom on their own.
//
// Files follow the protocol's concerns:
//
//	fixed.go      fixed-point format and the public lookup tables
//	weights.go    Config, Weights, conversion to fixed point
//	reference.go  plaintext float32 block 0 (the specification of the math)
//	corr.go       correlated-randomness streams (dealer side and party side)
//	gates.go      the 2PC gates: truncation, Beaver product, masked LUT
//	dealer.go     the client's side: Dealer.Token
//	party.go      a party's side: Party.Step, the per-token circuit
//	messages.go   byte layouts of every message (spec §5)
//	output.go     output shares, noise and Reconstruct
//	stage.go      confidential stages: StageDealer, StageParty, SHARE messages
//	state.go      a stage party's state per step (STATE) and a party resumed
//	              from it, for verifiers (spec/11 §7.6)
//
// The package does no I/O of its own: party-to-party traffic goes through the
// Peer interface, and all other messages are byte slices the caller carries.
// It never logs values.
package mpc
