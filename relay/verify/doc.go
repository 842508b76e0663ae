// Package verify owns the integrity checks of anonymous circuits
// (spec/11-verification.md): the signed per-step commitment a compute hop
// returns to the client (commit.go), the hashes it binds (hash.go), the
// ticket a client submits so a verifier can re-execute a hop's session up to
// a committed step (ticket.go), and the re-execution itself (check.go),
// which a verifier and a directory authority run alike: a ticket whose
// re-execution does not give the committed outputs is a fraud proof.
//
// It depends on the compute engine (compute/model) and on nothing of the
// relay or the directory, so the hop service, the client, the verifier and
// the authorities all import it. It never logs.
package verify
