// Package verifytest builds commitments and tickets for tests of the
// packages that check them (verifiers, authorities judging fraud proofs,
// the share-chain's slashing).
package verifytest

import (
	"encoding/binary"
	"testing"

	"github.com/unfed/unfed/compute/model"
	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/relay/verify"
)

// TokenTicket signs, as id, a one-step commitment for the whole model of
// sh (named modelID) run on the token ids, with output hash out (the true
// logits' hash when nil), and returns its ticket's bytes (spec 11 §3).
func TokenTicket(tb testing.TB, sh *model.Shard, modelID string, id *keys.Identity, ids []int, out *[32]byte) []byte {
	tb.Helper()
	c := &verify.Commitment{ModelID: modelID, First: 0, Last: sh.Last(), Start: 0, Count: len(ids),
		InKind: verify.KindTokens, OutKind: verify.KindLogits}
	h := verify.NewHasher(verify.KindTokens)
	h.Tokens(ids)
	c.In = h.Sum()
	c.InChain = verify.ChainNext([32]byte{}, 0, len(ids), c.In)
	if out != nil {
		c.Out = *out
	} else {
		ms, err := sh.NewSession(model.SessionOptions{})
		if err != nil {
			tb.Fatal(err)
		}
		lg, err := ms.ForwardTokens(ids, 0)
		ms.Close()
		if err != nil {
			tb.Fatal(err)
		}
		ho := verify.NewHasher(verify.KindLogits)
		ho.Floats(lg)
		c.Out = ho.Sum()
	}
	c.OutChain = verify.OutChainNext([32]byte{}, 0, len(ids), c.Out)
	if err := c.Sign(id, id.Public); err != nil {
		tb.Fatal(err)
	}
	var prefix []byte
	for _, v := range ids {
		prefix = binary.BigEndian.AppendUint32(prefix, uint32(v))
	}
	tk, err := verify.NewTicket(c, 0, []int{0}, prefix)
	if err != nil {
		tb.Fatal(err)
	}
	return tk.Append(nil)
}
