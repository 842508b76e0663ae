// Package hop implements the compute hop protocol (spec/03-compute.md): the
// messages a client exchanges with the compute hops of its circuit, the
// messages compute hops exchange with each other over edges, the edge crypto
// that makes hop i's output readable only by hop i+1, and the Handler that
// runs one circuit's shard session on a relay.
//
// Who calls what:
//
//   - The relay's circuit switch (relay/circuit) makes one Handler per circuit
//     that carries compute traffic, gives it a Circuit (how to send), and feeds
//     it every relay DATA message addressed to this hop (Handler.Data) and
//     every edge message addressed to this hop (Handler.Edge). It calls
//     Handler.Close when the circuit dies.
//   - The client (relay/origin, client/) builds Setup, Tokens, MPCStep,
//     Truncate and Teardown messages with Msg.Append and reads SetupOK, Logits
//     and Error with Decode.
//
// Wire formats (spec/03-compute.md):
//
//	client↔hop message   type u8 || body                 (§3, msg.go)
//	edge envelope        channel u8 || AES-256-GCM(msg)  (§5, edgecrypto.go)
//	edge message         type u8 || body                 (§4, edgemsg.go)
//
// Header integers are big-endian; tensor element arrays (activations, dense
// logits) are little-endian IEEE 754, the engine's native layout.
//
// This package never logs activations, token ids, logits or keys.
package hop
