package sharechain

// Forwarding accepted blocks to peer nodes over HTTP (spec 12 §5.4): one
// goroutine drains a bounded queue and posts each block to every peer,
// answering the GET_BLOCKs a peer sends back from this node's chain. A full
// queue drops the block (the peer fetches it later as an ancestor).

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// forwardQueue bounds the blocks waiting to be forwarded.
const forwardQueue = 256

// Forwarder posts blocks a node accepted to peers.
type Forwarder struct {
	n      *Node
	peers  []string
	client *http.Client
	queue  chan *Block
}

// StartForwarder forwards every block n accepts or produces from now on to
// the peers (base URLs of nodes serving Handler) until ctx ends.
func (n *Node) StartForwarder(ctx context.Context, peers []string) *Forwarder {
	f := &Forwarder{n: n, peers: peers, client: &http.Client{Timeout: 20 * time.Second}, queue: make(chan *Block, forwardQueue)}
	n.mu.Lock()
	n.forward = f
	n.mu.Unlock()
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case b := <-f.queue:
				for _, p := range f.peers {
					if err := f.post(ctx, p, b, 0); err != nil {
						n.log.Info("forwarding a block failed", "peer", p, "err", err)
					}
				}
			}
		}
	}()
	return f
}

func (f *Forwarder) enqueue(b *Block) {
	select {
	case f.queue <- b:
	default:
		f.n.log.Warn("forward queue full; block dropped (peers fetch it as an ancestor)")
	}
}

// post sends b to peer, first sending what the peer asks for.
func (f *Forwarder) post(ctx context.Context, peer string, b *Block, depth int) error {
	if depth > 64 {
		return fmt.Errorf("sharechain: forward: ancestor chain too deep")
	}
	url := strings.TrimSuffix(peer, "/") + "/sharechain/v1/gossip"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(EncodeGossip(MsgBlock, b.Marshal())))
	if err != nil {
		return err
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4*(5+32)+1))
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("sharechain: forward: %s", resp.Status)
	}
	if len(body) == 0 {
		return nil
	}
	asks, err := SplitGossip(body, 1+MaxUncles)
	if err != nil {
		return err
	}
	for _, a := range asks {
		m, err := ParseGossip(a)
		if err != nil || m.Type != MsgGetBlock {
			return fmt.Errorf("sharechain: forward: unexpected reply")
		}
		missing, ok := f.n.chain.Block(m.BlockID)
		if !ok {
			return fmt.Errorf("sharechain: forward: peer asks for a block this node lacks")
		}
		if err := f.post(ctx, peer, missing, depth+1); err != nil {
			return err
		}
	}
	return f.post(ctx, peer, b, depth+1)
}
