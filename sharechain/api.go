package sharechain

// The explorer's JSON API and the gossip endpoint (spec 12 §9):
//
//	GET  /sharechain/v1/status          chain summary
//	GET  /sharechain/v1/blocks?limit=N  the best chain's latest blocks
//	GET  /sharechain/v1/payouts         PPLNS payouts (§6.4)
//	GET  /sharechain/v1/relay/{fp}      one relay's blocks, shares, payout
//	GET  /sharechain/v1/block/{id}      a block's encoding
//	POST /sharechain/v1/gossip          one gossip frame; replies are
//	                                    returned concatenated

import (
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/unfed/unfed/relay/keys"
)

// StatusDoc is /sharechain/v1/status.
type StatusDoc struct {
	Network string `json:"network"`
	Blocks  int    `json:"blocks"`
	Height  uint64 `json:"height"`
	Tip     string `json:"tip,omitempty"`
	Score   uint64 `json:"score"`
	Matured uint64 `json:"matured"`
	Value   uint64 `json:"value"`
	Paid    uint64 `json:"paid"`
	Carried uint64 `json:"carried"`
	Pending int    `json:"pending"`
}

// BlockDoc is one block in /sharechain/v1/blocks.
type BlockDoc struct {
	Height   uint64 `json:"height"`
	ID       string `json:"id"`
	TimeMs   uint64 `json:"time_ms"`
	Producer string `json:"producer"`
	Credits  int    `json:"credits"`
	Units    uint64 `json:"units"`
	Uncles   int    `json:"uncles"`
}

// PayoutDoc is one relay in /sharechain/v1/payouts.
type PayoutDoc struct {
	Relay  string `json:"relay"`
	Payout uint64 `json:"payout"`
	Shares uint64 `json:"shares"`
	Stake  uint64 `json:"stake,omitempty"` // /relay/{fp} only: locked stake
	// Unbonding and Released are /relay/{fp} only (spec 12 §7.4).
	Unbonding uint64 `json:"unbonding,omitempty"`
	Released  uint64 `json:"released,omitempty"`
}

func hexID(id BlockID) string { return hex.EncodeToString(id[:]) }

// Handler serves the node's API for nowMs, the local clock.
func (n *Node) Handler(nowMs func() uint64) http.Handler {
	if nowMs == nil {
		nowMs = func() uint64 { return uint64(time.Now().UnixMilli()) }
	}
	mux := http.NewServeMux()
	writeJSON := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /sharechain/v1/status", func(w http.ResponseWriter, r *http.Request) {
		s := n.chain.Payouts()
		d := StatusDoc{Network: n.cfg.Params.Network, Blocks: n.chain.Len(), Score: n.chain.TipScore(),
			Matured: s.Matured, Value: s.Value, Paid: s.Paid, Carried: s.Carried, Pending: n.Pending()}
		if t := n.chain.Tip(); t != nil {
			d.Height, d.Tip = t.Height, hexID(t.ID())
		}
		writeJSON(w, d)
	})
	mux.HandleFunc("GET /sharechain/v1/blocks", func(w http.ResponseWriter, r *http.Request) {
		limit := 20
		if v := r.URL.Query().Get("limit"); v != "" {
			l, err := strconv.Atoi(v)
			if err != nil || l < 1 || l > 1000 {
				http.Error(w, "limit must be 1..1000", http.StatusBadRequest)
				return
			}
			limit = l
		}
		main := n.chain.MainChain()
		docs := []BlockDoc{}
		for i := len(main) - 1; i >= 0 && len(docs) < limit; i-- {
			b := main[i]
			docs = append(docs, BlockDoc{Height: b.Height, ID: hexID(b.ID()), TimeMs: b.TimeMs, Producer: b.Fingerprint().String(),
				Credits: len(b.Entries), Units: b.Units(), Uncles: len(b.Uncles)})
		}
		writeJSON(w, docs)
	})
	mux.HandleFunc("GET /sharechain/v1/payouts", func(w http.ResponseWriter, r *http.Request) {
		docs := []PayoutDoc{}
		for _, p := range n.chain.Payouts().Relays {
			docs = append(docs, PayoutDoc{Relay: p.Relay.String(), Payout: p.Amount, Shares: p.Shares})
		}
		writeJSON(w, docs)
	})
	mux.HandleFunc("GET /sharechain/v1/relay/{fp}", func(w http.ResponseWriter, r *http.Request) {
		fp, err := keys.ParseFingerprint(r.PathValue("fp"))
		if err != nil {
			http.Error(w, "bad fingerprint", http.StatusBadRequest)
			return
		}
		st := n.chain.StakeOf(fp)
		d := PayoutDoc{Relay: fp.String(), Stake: st.Locked, Unbonding: st.Unbonding, Released: st.Released}
		for _, p := range n.chain.Payouts().Relays {
			if p.Relay == fp {
				d.Payout, d.Shares = p.Amount, p.Shares
			}
		}
		writeJSON(w, d)
	})
	mux.HandleFunc("GET /sharechain/v1/block/{id}", func(w http.ResponseWriter, r *http.Request) {
		raw, err := hex.DecodeString(r.PathValue("id"))
		if err != nil || len(raw) != 32 {
			http.Error(w, "bad block id", http.StatusBadRequest)
			return
		}
		b, ok := n.chain.Block(BlockID(raw))
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(b.Marshal())
	})
	mux.HandleFunc("POST /sharechain/v1/gossip", func(w http.ResponseWriter, r *http.Request) {
		frame, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxGossipFrame))
		if err != nil {
			http.Error(w, "frame too large", http.StatusRequestEntityTooLarge)
			return
		}
		replies, err := n.HandleGossip(r.Context(), frame, nowMs())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		for _, f := range replies {
			w.Write(f)
		}
	})
	return mux
}
