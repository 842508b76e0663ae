// Package hop implements the compute hop protocol (spec/03-compute.md): the
// messages a client exchanges with the compute hops of its circuit, the
// messages compute hops exchange with each other over edges, the edge crypto
// that makes hop i's output readable only by hop i+1, and the Service that
// runs each circuit's session on a relay (a shard of compute/model, or a party
// of compute/mpc's pair).
//
// Who calls what:
//
//   - The relay daemon makes one Service (NewService) with what the relay
//     serves and sets circuit.Config.Handler to Service.CircuitHandler(). The
//     switch then feeds it every relay DATA message addressed to this hop and
//     every edge message for it, one at a time per circuit, and reports dead
//     circuits. Other front ends call Service.Deliver and Service.Closed.
//   - The client (relay/origin, client/) builds Setup, Tokens, MPCStep,
//     Truncate and Teardown messages with Msg.Append, draws the EdgeSecrets,
//     and reads SetupOK, Logits and Error with Decode; an *Error is a Go error
//     whose Code it can branch on.
//   - Tests use hoptest.Chain, an in-memory circuit, and Config.Observe, which
//     sees every byte a hop receives.
//
// Files: msg.go and errors.go (client↔hop messages, spec §3), edgemsg.go
// (edge messages, §4), edgecrypto.go (edge envelopes, §5), topk.go (the
// deterministic top-k of §3.8), service.go and session.go (a hop's sessions,
// §6), party.go (the MPC pair and the hop after it, §6.5–6.6), circuit.go (the
// relay/circuit adapter).
//
// Header integers are big-endian; tensor element arrays (activations, dense
// logits) are little-endian IEEE 754, the engine's native layout.
//
// This package never logs activations, token ids, logits or keys.
package hop
