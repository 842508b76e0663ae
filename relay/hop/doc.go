// Package hop implements the compute hop protocol (spec/03-compute.md, and
// the confidential roles of spec/10-confidential.md §3): the messages a client
// exchanges with the hops of its circuit, the messages hops exchange with each
// other over edges, the edge crypto that makes an edge message readable only by
// the hop it is for, and the Service that runs each circuit's session on a
// relay: a shard of compute/model run in the clear (anonymous circuits), or a
// party or the dealer of one confidential stage of compute/mpc.
//
// Who calls what:
//
//   - The relay daemon makes one Service (NewService) with what the relay
//     serves and sets circuit.Config.Handler to Service.CircuitHandler(). The
//     switch then feeds it every relay DATA message addressed to this hop and
//     every edge message for it, one at a time per circuit, and reports dead
//     circuits. Other front ends call Service.Deliver and Service.Closed.
//   - The client (relay/origin, client/) builds Setup, Tokens, Deal,
//     MPCInput, Truncate and Teardown messages with Msg.Append, draws the
//     EdgeSecrets, and reads SetupOK, Logits, MPCOutput and Error with
//     Decode; an *Error is a Go error whose Code it can branch on.
//   - Tests use hoptest.Chain, an in-memory circuit; Config.Observe, which
//     sees every byte a hop receives; and Config.Capture, which sees every
//     message a hop opens or sends in plaintext (the relay's audit_capture).
//
// Files: msg.go and errors.go (client↔hop messages, spec §3), edgemsg.go
// (edge messages, §4), edgecrypto.go (edge envelopes, §5), topk.go (the
// deterministic top-k of §3.8), service.go and session.go (a hop's sessions
// and the compute role, §6), party.go (the parties of a confidential stage,
// spec/10 §3), dealer.go (its dealer, which pauses for the network while it
// deals: relay/internal/netyield), circuit.go (the relay/circuit adapter).
//
// Header integers are big-endian; tensor element arrays (activations, dense
// logits) are little-endian IEEE 754, the engine's native layout.
//
// This package never logs activations, token ids, shares, logits or keys.
package hop
