package sharechain

// Pulling a peer's chain (spec 12 §5.4): a node that takes no gossip (a
// relay, which serves no HTTP) asks a peer for its tip and fetches the
// blocks it lacks, parents first, through the same frame handling as
// gossip.

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// MaxPullBlocks bounds the blocks one Pull fetches; a node further behind
// catches up over several pulls.
const MaxPullBlocks = 256

// Pull fetches the tip of the peer at base URL (its /sharechain/v1 API) and
// every block this node lacks below it, at most MaxPullBlocks, adding them
// as gossip. It returns how many blocks it added.
func (n *Node) Pull(ctx context.Context, client *http.Client, base string, nowMs uint64) (int, error) {
	base = strings.TrimSuffix(base, "/")
	var st StatusDoc
	if err := getPeer(ctx, client, base+"/sharechain/v1/status", 1<<16, func(b []byte) error { return json.Unmarshal(b, &st) }); err != nil {
		return 0, err
	}
	if st.Tip == "" {
		return 0, nil
	}
	raw, err := hex.DecodeString(st.Tip)
	if err != nil || len(raw) != len(BlockID{}) {
		return 0, fmt.Errorf("sharechain: pull: bad tip %q", st.Tip)
	}
	stack := []BlockID{BlockID(raw)}
	got := map[BlockID][]byte{}
	added, fetched := 0, 0
	for len(stack) > 0 {
		id := stack[len(stack)-1]
		if _, ok := n.chain.Block(id); ok {
			stack = stack[:len(stack)-1]
			continue
		}
		b, ok := got[id]
		if !ok {
			if fetched >= MaxPullBlocks {
				return added, nil
			}
			fetched++
			if err := getPeer(ctx, client, base+"/sharechain/v1/block/"+hex.EncodeToString(id[:]), MaxBlockLen, func(body []byte) error {
				b = body
				return nil
			}); err != nil {
				return added, err
			}
			blk, err := ParseBlock(b)
			if err != nil {
				return added, fmt.Errorf("sharechain: pull: %w", err)
			}
			if blk.ID() != id {
				return added, fmt.Errorf("sharechain: pull: asked for block %x, got another", id[:4])
			}
			got[id] = b
		}
		replies, err := n.HandleGossip(ctx, EncodeGossip(MsgBlock, b), nowMs)
		if err != nil {
			return added, err
		}
		if len(replies) == 0 {
			if _, ok := n.chain.Block(id); !ok {
				return added, fmt.Errorf("sharechain: pull: block %x not taken", id[:4])
			}
			added++
			stack = stack[:len(stack)-1]
			continue
		}
		for _, r := range replies {
			m, err := ParseGossip(r)
			if err != nil || m.Type != MsgGetBlock {
				return added, fmt.Errorf("sharechain: pull: unexpected reply")
			}
			if _, seen := got[m.BlockID]; seen {
				return added, fmt.Errorf("sharechain: pull: block %x asked for twice", m.BlockID[:4])
			}
			stack = append(stack, m.BlockID)
		}
	}
	return added, nil
}

func getPeer(ctx context.Context, client *http.Client, url string, limit int64, use func([]byte) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("sharechain: pull: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("sharechain: pull: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return fmt.Errorf("sharechain: pull: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("sharechain: pull: %s: %s", url, resp.Status)
	}
	if int64(len(body)) > limit {
		return fmt.Errorf("sharechain: pull: %s: answer larger than %d bytes", url, limit)
	}
	return use(body)
}
