// Package audit measures what each relay of a circuit can recover of the
// prompt and the answer from what it saw (spec/10 §8, `unfed audit`).
//
// # What a relay saw
//
// A relay with audit_capture appends every compute message it receives from
// or sends to the client, and every edge message it opens or seals, in
// plaintext to capture.log (ReadCapture; the record layout is in
// capture.go). The harness (testnet.Audit) notes each file's size between
// requests and hands Analyze the records of each request.
//
// # Attacks
//
// A relay's role comes from the SETUP it received (none: the guard).
//
//   - TOKENS: the ids, read directly.
//   - ACTIVATIONS received (the residual stream entering the hop's first
//     layer L): vocabulary matching (Invert). With the public weights, for
//     each position p in order, given the tokens recovered before p (held in
//     the engine's KV cache), layers [0, L) run on every candidate token at
//     p; the candidate whose output is nearest in L2 wins and is appended,
//     the others rolled back (Session.Truncate). For L = 0 it is the nearest
//     embedding row. A candidate that reproduces the observed row (up to f16
//     rounding) ends the search early; candidates are tried nearest
//     embedding first, which on stories260K finds the token among the first
//     few.
//   - LOGITS sent: the argmax, a generated token.
//   - Confidential roles (parties and dealers): every model-width vector in a
//     SHARE message (MPC_INPUT, MPC_RESHARE in both directions and the sum of
//     the two pieces of one position, MPC_OUTPUT) and every dim-sized window
//     of a peer message (05-mpc §5.3; received, sent, and their sum, the
//     opened masked value), read as signed fixed point at 2^16, is matched
//     against the embedding (NearestEmbedding) and against the outputs of
//     layers [0, first) for every candidate after the true prefix
//     (KnownPrefix: Invert with the prefix handed to the attacker, which is
//     stronger than recovering it and costs one table per position however
//     many vectors are matched). The relay's one guess at a position is the
//     nearest match over all its vectors and both attacks there.
//
// Each role is scored position by position against the tokens the audit
// sent: prompt positions (BOS excluded) and generated tokens (learned from
// LOGITS or from the input of a later position). Every attack is repeated
// on random data of the same shape — uniform 64-bit words read as fixed
// point, and Gaussian values with the observed mean and deviation — which
// gives each role's chance level. The best single source (one kind of
// vector under one attack) is reported too, chosen in hindsight; its
// baseline shows how much of it the choice alone explains.
package audit
