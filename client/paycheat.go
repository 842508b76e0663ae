//go:build unfedcheat

package client

import (
	"encoding/hex"
	"encoding/json"
	"os"

	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/sharechain"
)

// DoubleSpendRecord is what a client built with the unfedcheat tag writes
// to the file UNFED_CHEAT_DOUBLESPEND names: the credits it spent twice,
// where, and how far it got.
type DoubleSpendRecord struct {
	// Credits are the ids (hex) of the credits of the first PAY.
	Credits []string
	// First is the relay the credits were paid to first; Second the relay
	// of the next PAY to another relay, which got the same credits too
	// (the credit presented at two relays at once).
	First, Second string
	// Again is set once the credits were presented to First a second
	// time, in a later PAY.
	Again bool
}

// A client built with the unfedcheat tag double-spends (spec/12 §3.4):
// with UNFED_CHEAT_DOUBLESPEND=path in its environment, it keeps the coins
// of its first PAY, spends them again (re-signed for that relay) in the
// next PAY to another relay, and once more in a later PAY to the first
// relay; then it pays honestly. Each step is recorded in path as JSON
// (DoubleSpendRecord). Production builds do not contain this file.
func init() {
	path := os.Getenv("UNFED_CHEAT_DOUBLESPEND")
	if path == "" {
		return
	}
	var (
		rec   DoubleSpendRecord
		first keys.Fingerprint
		held  []sharechain.Coin
		stage int
	)
	save := func() {
		if b, err := json.Marshal(rec); err == nil {
			_ = os.WriteFile(path, b, 0o600)
		}
	}
	replay = func(fp keys.Fingerprint, coins []sharechain.Coin) []sharechain.Coin {
		switch {
		case stage == 0:
			held, first, stage = append([]sharechain.Coin(nil), coins...), fp, 1
			rec.First = fp.String()
			for _, c := range coins {
				id := c.Credit.ID()
				rec.Credits = append(rec.Credits, hex.EncodeToString(id[:]))
			}
			save()
		case stage == 1 && fp != first:
			stage, rec.Second = 2, fp.String()
			save()
			return held
		case stage == 2 && fp == first:
			stage, rec.Again = 3, true
			save()
			return held
		}
		return nil
	}
}
