package sharechain

// Block gossip between relays over their links (spec 12 §5.5), as
// Bitcoin's inv/getdata: a node announces the id of every block it accepts
// or produces (INV) to each neighbour not known to have it; a neighbour that
// lacks it asks (GETDATA) and gets it in BLOCK_PARTs; the block goes
// through the node's validation (HandleGossip) and is announced onwards
// only if it is new and valid, so a bad block stops at the first honest
// relay and a block crosses each link at most once in each direction.
//
// Pipeline: Deliver (the link's reader; never blocks) → queue → Run (one
// goroutine) → HandleLink. mu guards peers, inflight and orphans.
//
// Limits, per neighbour: a token bucket of messages (MsgRate, MsgBurst) and
// one of blocks served (BlockRate, BlockBurst); at most MaxGetData blocks
// asked of it at once, each at most MaxBlockLen; a neighbour that exceeds a
// bucket, sends what was not asked for, sends a malformed message or
// MaxStrikes invalid blocks is cut off for BanFor: its messages are
// dropped and it is sent nothing.

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// LinkPeer is a neighbour relay's link (circuit.Neighbour). Values must be
// comparable and equal for the same link.
type LinkPeer interface {
	Send(payload []byte) error
}

// LinkGossipConfig sets the limits of link gossip. The zero value of each
// field means its default.
type LinkGossipConfig struct {
	MsgRate    float64       // messages per second per neighbour (default 50)
	MsgBurst   float64       // (default 500)
	BlockRate  float64       // blocks served per second per neighbour (default 5)
	BlockBurst float64       // (default 100)
	MaxStrikes int           // invalid blocks before a cut-off (default 3)
	BanFor     time.Duration // how long a cut-off lasts (default 10 min)
	Now        func() time.Time
	Log        *slog.Logger
}

func (c *LinkGossipConfig) fill() {
	def := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.MsgRate, 50)
	def(&c.MsgBurst, 500)
	def(&c.BlockRate, 5)
	def(&c.BlockBurst, 100)
	if c.MaxStrikes == 0 {
		c.MaxStrikes = 3
	}
	if c.BanFor == 0 {
		c.BanFor = 10 * time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
}

// Bounds of the gossip state.
const (
	linkQueue      = 1024     // messages waiting for Run
	linkQueueBytes = 8 << 20  // and their bytes
	maxKnown       = 4096     // ids remembered per neighbour
	maxOrphans     = 64       // blocks waiting for a parent or uncle
	maxOrphanBytes = 16 << 20 // their bytes
	askTimeout     = 30 * time.Second
)

// bucket is a token bucket on an injected clock.
type bucket struct {
	tokens float64
	last   time.Time
}

func (b *bucket) take(now time.Time, rate, burst, n float64) bool {
	if b.last.IsZero() {
		b.tokens = burst
	} else if d := now.Sub(b.last).Seconds(); d > 0 {
		b.tokens = min(burst, b.tokens+d*rate)
	}
	b.last = now
	if b.tokens < n {
		return false
	}
	b.tokens -= n
	return true
}

// idSet is a set of block ids bounded by evicting the oldest.
type idSet struct {
	m     map[BlockID]struct{}
	order []BlockID
	limit int
}

func newIDSet(limit int) *idSet { return &idSet{m: map[BlockID]struct{}{}, limit: limit} }

func (s *idSet) has(id BlockID) bool { _, ok := s.m[id]; return ok }

func (s *idSet) add(id BlockID) {
	if s.has(id) {
		return
	}
	if len(s.order) >= s.limit {
		delete(s.m, s.order[0])
		s.order = s.order[1:]
	}
	s.m[id] = struct{}{}
	s.order = append(s.order, id)
}

// assembly is a block being received in parts.
type assembly struct {
	buf   []byte
	total uint32
	at    time.Time // when it was asked for
}

type peerState struct {
	msgs, blocks bucket
	bannedUntil  time.Time
	strikes      int
	known        *idSet                // ids it announced, sent or was sent
	asked        map[BlockID]*assembly // asked of it, being received
}

type orphan struct {
	raw  []byte
	from LinkPeer
}

type inbound struct {
	from    LinkPeer
	payload []byte
}

// LinkGossip runs link gossip for a node.
type LinkGossip struct {
	n     *Node
	cfg   LinkGossipConfig
	peers func() []LinkPeer
	queue chan inbound
	qlen  atomic.Int64 // bytes in queue
	m     linkMetrics

	mu          sync.Mutex
	state       map[LinkPeer]*peerState
	inflight    map[BlockID]time.Time // asked of some neighbour, when
	orphans     map[BlockID]orphan
	orphanOrder []BlockID
	orphanBytes int
}

type linkMetrics struct {
	msgs    *prometheus.CounterVec
	dropped *prometheus.CounterVec
	cutoffs prometheus.Counter
}

// NewLinkGossip makes n gossip over the links peers returns (the open links
// to other relays) and announces every block n accepts or produces from
// now on. Run must be running for Deliver's messages to be handled.
func NewLinkGossip(n *Node, peers func() []LinkPeer, cfg LinkGossipConfig) *LinkGossip {
	cfg.fill()
	g := &LinkGossip{n: n, cfg: cfg, peers: peers, queue: make(chan inbound, linkQueue),
		state: map[LinkPeer]*peerState{}, inflight: map[BlockID]time.Time{}, orphans: map[BlockID]orphan{}}
	g.m = linkMetrics{
		msgs: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "unfed", Subsystem: "sharechain",
			Name: "link_messages_total", Help: "Link gossip messages handled, by type."}, []string{"type"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "unfed", Subsystem: "sharechain",
			Name: "link_dropped_total", Help: "Link gossip messages dropped, by reason."}, []string{"reason"}),
		cutoffs: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "unfed", Subsystem: "sharechain",
			Name: "link_cutoffs_total", Help: "Neighbours cut off from gossip for misbehaving."}),
	}
	n.mu.Lock()
	n.links = g
	n.mu.Unlock()
	return g
}

// Collectors returns the gossip's metrics.
func (g *LinkGossip) Collectors() []prometheus.Collector {
	return []prometheus.Collector{g.m.msgs, g.m.dropped, g.m.cutoffs}
}

// Deliver queues a message from a neighbour for Run; a full queue (in
// messages or bytes) drops it.
func (g *LinkGossip) Deliver(from LinkPeer, payload []byte) {
	if g.qlen.Add(int64(len(payload))) > linkQueueBytes {
		g.qlen.Add(-int64(len(payload)))
		g.m.dropped.WithLabelValues("queue_full").Inc()
		return
	}
	select {
	case g.queue <- inbound{from, payload}:
	default:
		g.qlen.Add(-int64(len(payload)))
		g.m.dropped.WithLabelValues("queue_full").Inc()
	}
}

// Run handles delivered messages until ctx ends.
func (g *LinkGossip) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case in := <-g.queue:
			g.qlen.Add(-int64(len(in.payload)))
			g.HandleLink(ctx, in.from, in.payload)
		}
	}
}

// peer returns from's state, made on first use. Called with mu held.
func (g *LinkGossip) peer(from LinkPeer) *peerState {
	p := g.state[from]
	if p == nil {
		p = &peerState{known: newIDSet(maxKnown), asked: map[BlockID]*assembly{}}
		g.state[from] = p
	}
	return p
}

// cutOff stops gossip with p for BanFor. Called with mu held.
func (g *LinkGossip) cutOff(p *peerState, reason string) {
	p.bannedUntil = g.cfg.Now().Add(g.cfg.BanFor)
	p.asked = map[BlockID]*assembly{}
	g.m.cutoffs.Inc()
	g.m.dropped.WithLabelValues(reason).Inc()
	g.cfg.Log.Info("share-chain: neighbour cut off from gossip", "reason", reason, "for", g.cfg.BanFor)
}

// CutOff reports whether from is cut off now.
func (g *LinkGossip) CutOff(from LinkPeer) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	p := g.state[from]
	return p != nil && g.cfg.Now().Before(p.bannedUntil)
}

// HandleLink handles one message from a neighbour.
func (g *LinkGossip) HandleLink(ctx context.Context, from LinkPeer, payload []byte) {
	now := g.cfg.Now()
	g.mu.Lock()
	p := g.peer(from)
	if now.Before(p.bannedUntil) {
		g.mu.Unlock()
		g.m.dropped.WithLabelValues("cut_off").Inc()
		return
	}
	if !p.msgs.take(now, g.cfg.MsgRate, g.cfg.MsgBurst, 1) {
		g.cutOff(p, "message_rate")
		g.mu.Unlock()
		return
	}
	m, err := ParseLinkMsg(payload)
	if err != nil {
		g.cutOff(p, "malformed")
		g.mu.Unlock()
		return
	}
	switch m.Type {
	case LinkInv:
		g.m.msgs.WithLabelValues("inv").Inc()
		for id, a := range p.asked { // a neighbour that never answers frees its slots
			if now.Sub(a.at) >= askTimeout {
				delete(p.asked, id)
			}
		}
		var want []BlockID
		for _, id := range m.IDs {
			p.known.add(id)
			if _, known := g.n.chain.Block(id); known {
				continue
			}
			if _, ok := g.orphans[id]; ok {
				continue
			}
			if t, ok := g.inflight[id]; ok && now.Sub(t) < askTimeout {
				continue
			}
			if len(p.asked)+len(want) >= MaxGetData {
				break
			}
			want = append(want, id)
		}
		g.ask(from, p, want, now)
		g.mu.Unlock()
	case LinkGetData:
		g.m.msgs.WithLabelValues("getdata").Inc()
		if !p.blocks.take(now, g.cfg.BlockRate, g.cfg.BlockBurst, float64(len(m.IDs))) {
			g.cutOff(p, "block_rate")
			g.mu.Unlock()
			return
		}
		for _, id := range m.IDs {
			p.known.add(id)
		}
		g.mu.Unlock()
		for _, id := range m.IDs {
			b, ok := g.n.chain.Block(id)
			if !ok {
				continue // nothing, as for GET_BLOCK (§5.4)
			}
			for _, part := range EncodeParts(id, b.Marshal()) {
				if err := from.Send(part); err != nil {
					g.m.dropped.WithLabelValues("send").Inc()
					break
				}
			}
		}
	case LinkBlockPart:
		g.m.msgs.WithLabelValues("block_part").Inc()
		id := m.IDs[0]
		a := p.asked[id]
		switch {
		case a == nil:
			g.cutOff(p, "unsolicited")
			g.mu.Unlock()
			return
		case a.buf == nil && m.Offset == 0:
			a.total = m.Total
			a.buf = make([]byte, 0, min(m.Total, MaxPartData))
		}
		if m.Total != a.total || int(m.Offset) != len(a.buf) {
			g.cutOff(p, "bad_part")
			g.mu.Unlock()
			return
		}
		a.buf = append(a.buf, m.Data...)
		if len(a.buf) < int(a.total) {
			g.mu.Unlock()
			return
		}
		delete(p.asked, id)
		delete(g.inflight, id)
		raw := a.buf
		g.mu.Unlock()
		g.receive(ctx, from, id, raw)
	}
}

// ask sends from a GETDATA for ids. Called with mu held.
func (g *LinkGossip) ask(from LinkPeer, p *peerState, ids []BlockID, now time.Time) {
	if len(ids) == 0 {
		return
	}
	for _, id := range ids {
		p.asked[id] = &assembly{at: now}
		g.inflight[id] = now
	}
	if err := from.Send(EncodeIDs(LinkGetData, ids)); err != nil {
		g.m.dropped.WithLabelValues("send").Inc()
		for _, id := range ids {
			delete(p.asked, id)
			delete(g.inflight, id)
		}
	}
}

// receive takes a complete block from a neighbour: validated by the node,
// kept as an orphan (and its missing parent or uncles asked of the same
// neighbour) if it lacks them, counted against the neighbour if invalid.
func (g *LinkGossip) receive(ctx context.Context, from LinkPeer, id BlockID, raw []byte) {
	b, err := ParseBlock(raw)
	if err != nil || b.ID() != id {
		g.mu.Lock()
		g.cutOff(g.peer(from), "bad_block")
		g.mu.Unlock()
		return
	}
	g.accept(ctx, from, b)
}

// accept runs b through the node's validation and then retries the orphans
// it may complete.
func (g *LinkGossip) accept(ctx context.Context, from LinkPeer, b *Block) {
	now := g.cfg.Now()
	g.mu.Lock()
	g.peer(from).known.add(b.ID()) // so the node's announcement skips it
	g.mu.Unlock()
	replies, err := g.n.HandleGossip(ctx, EncodeGossip(MsgBlock, b.Marshal()), uint64(now.UnixMilli()))
	g.mu.Lock()
	defer g.mu.Unlock()
	p := g.peer(from)
	switch {
	case err != nil:
		g.m.dropped.WithLabelValues("invalid_block").Inc()
		if p.strikes++; p.strikes >= g.cfg.MaxStrikes {
			g.cutOff(p, "invalid_blocks")
		}
		return
	case len(replies) > 0:
		g.addOrphan(b, from)
		var want []BlockID
		for _, r := range replies {
			m, err := ParseGossip(r)
			if err != nil || m.Type != MsgGetBlock {
				continue
			}
			if _, ok := g.orphans[m.BlockID]; ok || len(p.asked)+len(want) >= MaxGetData {
				continue
			}
			if _, ok := p.asked[m.BlockID]; !ok {
				want = append(want, m.BlockID)
			}
		}
		g.ask(from, p, want, now)
		return
	}
	// Accepted (or already known): orphans waiting for it may go now.
	for _, oid := range append([]BlockID(nil), g.orphanOrder...) {
		o, ok := g.orphans[oid]
		if !ok {
			continue
		}
		ob, err := ParseBlock(o.raw)
		if err != nil || len(g.n.chain.Missing(ob)) > 0 {
			continue
		}
		g.dropOrphan(oid)
		g.mu.Unlock()
		g.accept(ctx, o.from, ob)
		g.mu.Lock()
	}
}

// addOrphan keeps b until its parent and uncles arrive, evicting the
// oldest orphans beyond the bounds. Called with mu held.
func (g *LinkGossip) addOrphan(b *Block, from LinkPeer) {
	id := b.ID()
	if _, ok := g.orphans[id]; ok {
		return
	}
	raw := b.Marshal()
	for len(g.orphanOrder) > 0 && (len(g.orphans) >= maxOrphans || g.orphanBytes+len(raw) > maxOrphanBytes) {
		g.dropOrphan(g.orphanOrder[0])
		g.m.dropped.WithLabelValues("orphan_evicted").Inc()
	}
	g.orphans[id] = orphan{raw: raw, from: from}
	g.orphanOrder = append(g.orphanOrder, id)
	g.orphanBytes += len(raw)
}

func (g *LinkGossip) dropOrphan(id BlockID) {
	o, ok := g.orphans[id]
	if !ok {
		return
	}
	delete(g.orphans, id)
	g.orphanBytes -= len(o.raw)
	for i, x := range g.orphanOrder {
		if x == id {
			g.orphanOrder = append(g.orphanOrder[:i], g.orphanOrder[i+1:]...)
			break
		}
	}
}

// Announce sends an INV of b to every neighbour not cut off and not known
// to have it. The node calls it for each block it accepts or produces.
func (g *LinkGossip) Announce(b *Block) {
	id := b.ID()
	now := g.cfg.Now()
	peers := g.peers()
	g.mu.Lock()
	live := make(map[LinkPeer]bool, len(peers))
	var to []LinkPeer
	for _, lp := range peers {
		live[lp] = true
		p := g.peer(lp)
		if now.Before(p.bannedUntil) || p.known.has(id) {
			continue
		}
		p.known.add(id)
		to = append(to, lp)
	}
	for lp := range g.state { // forget closed links
		if !live[lp] {
			delete(g.state, lp)
		}
	}
	g.mu.Unlock()
	inv := EncodeIDs(LinkInv, []BlockID{id})
	for _, lp := range to {
		if err := lp.Send(inv); err != nil {
			g.m.dropped.WithLabelValues("send").Inc()
		}
	}
}
