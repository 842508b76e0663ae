package sharechain

// The chain engine (spec 12 §5): validates a block against its ancestry,
// keeps every valid block (forks included) in memory, persists it before
// acknowledging, and picks the tip by the deterministic rule of §5.3.
// mu guards every field below it.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"sort"
	"sync"

	"github.com/unfed/unfed/relay/keys"
)

// Params are the share-chain's consensus parameters (spec 12 §6.1).
type Params struct {
	// Network names the chain; its genesis id is derived from it.
	Network string
	// Window is the PPLNS window N in blocks (default 2160: 6 h of 10 s).
	Window int
	// Maturity is the verification depth V in blocks (default 60): a block's
	// value is paid, and its shares count, only V blocks later.
	Maturity int
	// UnclePenalty is the percentage of an uncle's units moved to its
	// nephew's producer (default 20).
	UnclePenalty uint64
	// UncleDepth is how far back an uncle may be (default 3).
	UncleDepth uint64
	// EpochSeconds is the mint key epoch (default 86400).
	EpochSeconds uint64
	// UnitsPerCredit bounds the units an entry may claim per unit of its
	// credit's denomination (default 1000).
	UnitsPerCredit uint64
	// MaxFutureMs is how far ahead of the local clock a block may be
	// (default 60000).
	MaxFutureMs uint64
	// Unbond is the unbonding period in blocks (default 4320, at least
	// Maturity): stake a relay asked to withdraw stays slashable that long
	// before it is released (spec 12 §7.4).
	Unbond int
}

// DefaultParams returns the defaults of spec 12 §6.1.
func DefaultParams(network string) Params {
	return Params{Network: network, Window: 2160, Maturity: 60, UnclePenalty: 20, UncleDepth: 3,
		EpochSeconds: 86400, UnitsPerCredit: 1000, MaxFutureMs: 60000, Unbond: 4320}
}

// Genesis returns the virtual parent of height-1 blocks:
// H("unfed-share-genesis-v1" || network).
func (p Params) Genesis() BlockID {
	return sha256.Sum256(append([]byte("unfed-share-genesis-v1"), p.Network...))
}

// Epoch returns the mint epoch of a time in Unix milliseconds.
func (p Params) Epoch(ms uint64) uint64 { return ms / 1000 / p.EpochSeconds }

func (p Params) check() error {
	if p.Window < 1 || p.Maturity < 0 || p.UnclePenalty > 100 || p.EpochSeconds == 0 || p.UnitsPerCredit == 0 || p.Unbond < p.Maturity {
		return fmt.Errorf("sharechain: bad parameters %+v", p)
	}
	return nil
}

// Errors a caller may branch on.
var (
	ErrUnknownParent = errors.New("sharechain: unknown parent")
	ErrBlockSpent    = errors.New("sharechain: block spends a credit already spent in its ancestry")
	// ErrOtherNetwork is a block or store of another network's chain.
	ErrOtherNetwork = errors.New("sharechain: another network's chain")
)

type node struct {
	b      *Block
	parent *node // nil for height 1
	score  uint64
	work   uint64 // credit value of own work entries (units > 0)
	stake  uint64 // credit value of own stake entries (0 units)
	value  uint64 // the block's pool: work of its own and its uncles' entries
	uncles []*node
}

func (n *node) height() uint64 { return n.b.Height }

// Chain is a share-chain view.
type Chain struct {
	params  Params
	genesis BlockID
	keys    *KeySet
	db      *DB // optional: where blocks persist

	// addMu orders the changes of the chain (addStored, Slash), each of
	// which also holds mu while it changes the maps below. validate reads
	// them holding addMu only: nothing changes them meanwhile, and readers
	// (Pay's Counted, for one) need not wait for a block's validation and
	// its durable store.
	addMu   sync.Mutex
	mu      sync.Mutex
	nodes   map[BlockID]*node
	credits map[CreditID][]*node // the blocks at which a credit counts
	nephews map[BlockID][]*node  // uncle -> blocks that include it
	unbonds map[CreditID][]*node // the blocks whose own entries unbond a stake credit
	slashed map[keys.Fingerprint]uint64
	heights map[uint64][]*node
	tip     *node
	// checked remembers credits whose RSA signature verified, so a peer
	// that resends valid credits in blocks it makes fail on a later entry
	// costs one verification per credit, not one per block (bounded:
	// cleared when full).
	checked map[[32]byte]struct{}
	// redeemed remembers the entries this node redeemed itself (Node.Pay
	// verified their spend and RSA signatures), keyed by entryKey, so
	// validating the block that carries them does not verify them again
	// (bounded as checked; entries leave it once a block of them is in).
	redeemed   map[[32]byte]struct{}
	redeemedMu sync.Mutex // guards redeemed
	loading    bool       // re-validating the store's own blocks at open
	// slashVersion counts slashes; payouts caches Payouts for payoutsTip
	// and payoutsSlashes.
	slashVersion   int
	payouts        *PayoutSummary
	payoutsTip     *node
	payoutsSlashes int
}

// maxChecked bounds Chain.checked.
const maxChecked = 1 << 17

// NewChain returns an empty chain; with db, it loads (and re-validates) the
// blocks stored there.
func NewChain(ctx context.Context, p Params, ks *KeySet, db *DB) (*Chain, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	c := &Chain{params: p, genesis: p.Genesis(), keys: ks, nodes: map[BlockID]*node{},
		credits: map[CreditID][]*node{}, nephews: map[BlockID][]*node{}, unbonds: map[CreditID][]*node{}, slashed: map[keys.Fingerprint]uint64{},
		heights: map[uint64][]*node{}}
	if db == nil {
		return c, nil
	}
	if err := db.bindNetwork(ctx, p.Network); err != nil {
		return nil, err
	}
	rows, err := db.sql.QueryContext(ctx, "SELECT raw FROM blocks ORDER BY height, id")
	if err != nil {
		return nil, fmt.Errorf("sharechain: load: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			return nil, fmt.Errorf("sharechain: load: %w", err)
		}
		b, err := ParseBlock(raw)
		if err != nil {
			return nil, fmt.Errorf("sharechain: load: %w", err)
		}
		// Stored blocks were valid when added: the clock check is moot, and
		// their credits' RSA and spend signatures were verified before they
		// were stored (c.loading); every other rule is checked again.
		c.loading = true
		err = c.add(b, ^uint64(0)>>1)
		c.loading = false
		if err != nil {
			return nil, fmt.Errorf("sharechain: load block %x: %w", b.ID(), err)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sharechain: load: %w", err)
	}
	srows, err := db.sql.QueryContext(ctx, "SELECT fingerprint, height FROM slashes")
	if err != nil {
		return nil, fmt.Errorf("sharechain: load: %w", err)
	}
	defer srows.Close()
	for srows.Next() {
		var fp []byte
		var h int64
		if err := srows.Scan(&fp, &h); err != nil {
			return nil, fmt.Errorf("sharechain: load: %w", err)
		}
		var f keys.Fingerprint
		copy(f[:], fp)
		c.slashed[f] = uint64(h)
	}
	c.db = db
	return c, srows.Err()
}

// Params returns the chain's parameters.
func (c *Chain) Params() Params { return c.params }

// Add validates b against its ancestry at local time nowMs and, if valid,
// stores it (durably, when the chain has a store) and updates the tip. A
// block already known is accepted again without effect.
func (c *Chain) Add(ctx context.Context, b *Block, nowMs uint64) error {
	return c.addStored(ctx, b, nowMs, nil)
}

// addStored is Add that also deletes the pending rows of done when it
// stores b.
func (c *Chain) addStored(ctx context.Context, b *Block, nowMs uint64, done []CreditID) error {
	c.addMu.Lock()
	defer c.addMu.Unlock()
	c.mu.Lock()
	_, known := c.nodes[b.ID()]
	c.mu.Unlock()
	if known {
		return nil
	}
	if err := c.validate(b, nowMs); err != nil {
		return err
	}
	if c.db != nil {
		if err := c.store(ctx, b, done); err != nil {
			return fmt.Errorf("sharechain: store block: %w", err)
		}
	}
	c.mu.Lock()
	c.insert(b)
	c.mu.Unlock()
	return nil
}

// store writes b and, in the same transaction, deletes the pending rows of
// done (the entries a producer put in b), so a crash leaves each paid entry
// either pending or in a stored block, never neither (spec 12 §8).
func (c *Chain) store(ctx context.Context, b *Block, done []CreditID) error {
	return c.db.write(ctx, func(tx *writeTx) error {
		if _, err := tx.Exec("INSERT OR IGNORE INTO blocks(id, height, raw) VALUES (?,?,?)", b.id[:], int64(b.Height), b.raw); err != nil {
			return err
		}
		return dropPending(tx, done)
	})
}

func (c *Chain) add(b *Block, nowMs uint64) error {
	if _, ok := c.nodes[b.ID()]; ok {
		return nil
	}
	if err := c.validate(b, nowMs); err != nil {
		return err
	}
	c.insert(b)
	return nil
}

// validate applies spec 12 §5.1 to a parsed (so signed) block. The caller
// holds addMu (or is loading the chain); validate writes only checked.
func (c *Chain) validate(b *Block, nowMs uint64) error {
	var parent *node
	if b.Height == 1 && b.Parent != c.genesis {
		return fmt.Errorf("%w: a first block on genesis %x, not %x (%s)", ErrOtherNetwork, b.Parent[:8], c.genesis[:8], c.params.Network)
	}
	if b.Parent != c.genesis {
		parent = c.nodes[b.Parent]
		if parent == nil {
			return ErrUnknownParent
		}
	}
	if want := heightAfter(parent); b.Height != want {
		return fmt.Errorf("sharechain: block height %d, want %d", b.Height, want)
	}
	if parent != nil && b.TimeMs < parent.b.TimeMs {
		return fmt.Errorf("sharechain: block time %d before its parent's %d", b.TimeMs, parent.b.TimeMs)
	}
	if b.TimeMs > nowMs+c.params.MaxFutureMs {
		return fmt.Errorf("sharechain: block time %d is in the future", b.TimeMs)
	}
	seen := map[CreditID]bool{}
	// Uncles (§5.2).
	for i, uid := range b.Uncles {
		for _, prev := range b.Uncles[:i] {
			if prev == uid {
				return errors.New("sharechain: uncle listed twice")
			}
		}
		u := c.nodes[uid]
		if u == nil {
			return fmt.Errorf("sharechain: unknown uncle %x", uid[:8])
		}
		if err := c.checkUncle(parent, b.Height, u, seen); err != nil {
			return err
		}
	}
	// Entries (§5.1): at least one; valid credits spent to this producer,
	// bounded units, unspent in the ancestry.
	if len(b.Entries) == 0 {
		return errors.New("sharechain: block without entries")
	}
	epoch := c.params.Epoch(b.TimeMs)
	fp := b.Fingerprint()
	unbonding := map[CreditID]bool{}
	// The spend signatures of the entries this node did not redeem itself,
	// in one batch (spendsig.go).
	redeemedAt := make([]bool, len(b.Entries))
	var checks []spendCheck
	var checkOf []int
	c.redeemedMu.Lock()
	for i, e := range b.Entries {
		if !c.loading && len(c.redeemed) > 0 {
			_, redeemedAt[i] = c.redeemed[entryKey(e, fp)]
		}
	}
	c.redeemedMu.Unlock()
	for i, e := range b.Entries {
		if !c.loading && !redeemedAt[i] {
			checks = append(checks, spendCheckOf(e, fp))
			checkOf = append(checkOf, i)
		}
	}
	spendOK := make([]bool, len(b.Entries))
	for j, ok := range verifySpends(checks) {
		spendOK[checkOf[j]] = ok
	}
	for i, e := range b.Entries {
		redeemed := redeemedAt[i]
		if !c.loading && !redeemed && !spendOK[i] {
			return fmt.Errorf("sharechain: entry %d: the credit was not spent to this block's producer", i)
		}
		if e.Units == UnbondUnits {
			if err := c.checkUnbond(e.Credit.ID(), fp, parent, unbonding); err != nil {
				return fmt.Errorf("sharechain: entry %d: %w", i, err)
			}
			continue
		}
		k, err := c.checkCredit(e.Credit, epoch, redeemed)
		if err != nil {
			return fmt.Errorf("sharechain: entry %d: %w", i, err)
		}
		if uint64(e.Units) > k.Denom*c.params.UnitsPerCredit {
			return fmt.Errorf("sharechain: entry %d claims %d units for a credit of %d", i, e.Units, k.Denom)
		}
		if err := c.unspent(e.Credit.ID(), parent, seen); err != nil {
			return err
		}
	}
	return nil
}

// unclesMaySpend is the mutation hook of the competing-blocks test: when
// set and true, checkUncle lets an uncle carry credits already spent in the
// ancestry, the broken rule under which a double spend's losing block
// would count as an uncle. It is nil in every production build; cheat.go
// (build tag unfedcheat) sets it.
var unclesMaySpend func() bool

// checkUncle applies §5.2 to uncle u of a block at height h on parent.
func (c *Chain) checkUncle(parent *node, h uint64, u *node, seen map[CreditID]bool) error {
	if u.height() >= h || u.height()+c.params.UncleDepth < h {
		return fmt.Errorf("sharechain: uncle at height %d for a block at %d", u.height(), h)
	}
	if ancestorAt(parent, u.height()) == u {
		return errors.New("sharechain: uncle is an ancestor")
	}
	if u.parent != nil && ancestorAt(parent, u.parent.height()) != u.parent {
		return errors.New("sharechain: uncle's parent is not an ancestor")
	}
	for _, n := range c.nephews[u.b.ID()] {
		if ancestorAt(parent, n.height()) == n {
			return errors.New("sharechain: uncle already included by an ancestor")
		}
	}
	for _, e := range u.b.Entries {
		if e.Units == UnbondUnits {
			continue // an uncle's unbond entries take no effect (§7.4)
		}
		if unclesMaySpend != nil && unclesMaySpend() {
			continue
		}
		if err := c.unspent(e.Credit.ID(), parent, seen); err != nil {
			return err
		}
	}
	return nil
}

// UncleCandidates returns up to MaxUncles blocks that a new block on the
// best tip may include as uncles, lowest id first, given the credits the new
// block will carry itself.
func (c *Chain) UncleCandidates(own []CreditID) []BlockID {
	c.mu.Lock()
	defer c.mu.Unlock()
	parent := c.tip
	h := heightAfter(parent)
	seen := map[CreditID]bool{}
	for _, id := range own {
		seen[id] = true
	}
	var cands []*node
	for k := h - min(h-1, c.params.UncleDepth); k < h; k++ {
		cands = append(cands, c.heights[k]...)
	}
	sort.Slice(cands, func(i, j int) bool {
		a, b := cands[i].b.ID(), cands[j].b.ID()
		return bytes.Compare(a[:], b[:]) < 0
	})
	var out []BlockID
	for _, u := range cands {
		if len(out) == MaxUncles {
			break
		}
		trial := maps.Clone(seen)
		if c.checkUncle(parent, h, u, trial) == nil {
			seen = trial
			out = append(out, u.b.ID())
		}
	}
	return out
}

// CanBeUncle reports whether a block on the best tip could include block
// id as an uncle (§5.2).
func (c *Chain) CanBeUncle(id BlockID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	u, ok := c.nodes[id]
	if !ok {
		return false
	}
	return c.checkUncle(c.tip, heightAfter(c.tip), u, map[CreditID]bool{}) == nil
}

// entryKey identifies an entry paid to producer fp: H(fp || units ||
// spend signature || credit).
func entryKey(e Entry, fp keys.Fingerprint) [32]byte {
	h := sha256.New()
	h.Write(fp[:])
	h.Write([]byte{byte(e.Units >> 24), byte(e.Units >> 16), byte(e.Units >> 8), byte(e.Units)})
	h.Write(e.SpendSig)
	h.Write(e.Credit.Marshal())
	var k [32]byte
	h.Sum(k[:0])
	return k
}

// NoteRedeemed records that this node verified e's spend signature for
// producer fp and its credit's RSA signature (spec 12 §5.1 lets it skip
// both when it validates a block carrying e).
func (c *Chain) NoteRedeemed(e Entry, fp keys.Fingerprint) {
	k := entryKey(e, fp)
	c.redeemedMu.Lock()
	defer c.redeemedMu.Unlock()
	if c.redeemed == nil || len(c.redeemed) >= maxChecked {
		c.redeemed = map[[32]byte]struct{}{}
	}
	c.redeemed[k] = struct{}{}
}

// checkCredit is KeySet.CheckCredit with the cache of verified credits;
// with verified, the RSA signature is known good and only the key and
// epoch are checked.
func (c *Chain) checkCredit(cr *Credit, epoch uint64, verified bool) (MintPublicKey, error) {
	k, ok := c.keys.Lookup(cr.KeyID)
	if ok && (c.loading || verified) {
		if !Valid(k.Epoch, epoch) {
			return MintPublicKey{}, fmt.Errorf("sharechain: credit of epoch %d has expired (epoch %d)", k.Epoch, epoch)
		}
		return k, nil
	}
	h := sha256.Sum256(cr.Marshal())
	if _, seen := c.checked[h]; ok && seen {
		if !Valid(k.Epoch, epoch) {
			return MintPublicKey{}, fmt.Errorf("sharechain: credit of epoch %d has expired (epoch %d)", k.Epoch, epoch)
		}
		return k, nil
	}
	k, err := c.keys.CheckCredit(cr, epoch)
	if err != nil {
		return k, err
	}
	if c.checked == nil || len(c.checked) >= maxChecked {
		c.checked = map[[32]byte]struct{}{}
	}
	c.checked[h] = struct{}{}
	return k, nil
}

func heightAfter(p *node) uint64 {
	if p == nil {
		return 1
	}
	return p.height() + 1
}

// unspent checks that id is not counted at parent or an ancestor of it, nor
// earlier in the block being validated.
func (c *Chain) unspent(id CreditID, parent *node, seen map[CreditID]bool) error {
	if seen[id] {
		return fmt.Errorf("%w: %x twice in one block", ErrBlockSpent, id[:8])
	}
	seen[id] = true
	for _, n := range c.credits[id] {
		if ancestorAt(parent, n.height()) == n {
			return fmt.Errorf("%w: %x at height %d", ErrBlockSpent, id[:8], n.height())
		}
	}
	return nil
}

// Missing returns the parent and uncles of b this chain lacks: what a node
// asks the sender for before b can be validated (spec 12 §5.4).
func (c *Chain) Missing(b *Block) []BlockID {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []BlockID
	if b.Height > 1 && b.Parent != c.genesis && c.nodes[b.Parent] == nil {
		out = append(out, b.Parent)
	}
	for _, u := range b.Uncles {
		if c.nodes[u] == nil {
			out = append(out, u)
		}
	}
	return out
}

// ancestorAt returns the ancestor of n (n itself included) at height h, or
// nil.
func ancestorAt(n *node, h uint64) *node {
	for n != nil && n.height() > h {
		n = n.parent
	}
	if n != nil && n.height() == h {
		return n
	}
	return nil
}

// insert links a validated block and updates the tip.
func (c *Chain) insert(b *Block) {
	n := &node{b: b, parent: c.nodes[b.Parent]}
	var base uint64
	if n.parent != nil {
		base = n.parent.score
	}
	for _, e := range b.Entries {
		id := e.Credit.ID()
		if e.Units == UnbondUnits {
			c.unbonds[id] = append(c.unbonds[id], n)
			continue
		}
		c.credits[id] = append(c.credits[id], n)
		k, _ := c.keys.Lookup(e.Credit.KeyID)
		if e.Units > 0 {
			n.work += k.Denom
		} else {
			n.stake += k.Denom
		}
	}
	n.value = n.work
	n.score = base + 1 + n.work + n.stake
	for _, uid := range b.Uncles {
		u := c.nodes[uid]
		n.uncles = append(n.uncles, u)
		n.score += u.work + u.stake
		n.value += u.work
		for _, e := range u.b.Entries {
			if e.Units == UnbondUnits {
				continue
			}
			id := e.Credit.ID()
			c.credits[id] = append(c.credits[id], n)
		}
		c.nephews[uid] = append(c.nephews[uid], n)
	}
	c.nodes[b.ID()] = n
	c.heights[b.Height] = append(c.heights[b.Height], n)
	if better(n, c.tip) {
		c.tip = n
	}
}

// Stake returns the stake relay fp has locked on the best chain (spec 12
// §7.1): the value of its stake entries, in its blocks and in uncles of
// best-chain blocks, that it has not asked to unbond (§7.4); 0 once it has
// been slashed (the stake is burned, §7.3).
func (c *Chain) Stake(fp keys.Fingerprint) uint64 { return c.StakeOf(fp).Locked }

// better is the fork choice of spec 12 §5.3: the higher score, then the
// lower block id.
func better(a, b *node) bool {
	if b == nil {
		return true
	}
	if a.score != b.score {
		return a.score > b.score
	}
	ai, bi := a.b.ID(), b.b.ID()
	return bytes.Compare(ai[:], bi[:]) < 0
}

// Tip returns the best block, or nil for an empty chain.
func (c *Chain) Tip() *Block {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tip == nil {
		return nil
	}
	return c.tip.b
}

// TipScore returns the best block's score.
func (c *Chain) TipScore() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tip == nil {
		return 0
	}
	return c.tip.score
}

// Len returns how many blocks the chain holds, forks included.
func (c *Chain) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.nodes)
}

// Block returns a known block.
func (c *Chain) Block(id BlockID) (*Block, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.nodes[id]
	if !ok {
		return nil, false
	}
	return n.b, true
}

// MainChain returns the best chain, height 1 first.
func (c *Chain) MainChain() []*Block {
	c.mu.Lock()
	defer c.mu.Unlock()
	nodes := c.mainLocked()
	out := make([]*Block, len(nodes))
	for i, n := range nodes {
		out[i] = n.b
	}
	return out
}

func (c *Chain) mainLocked() []*node {
	if c.tip == nil {
		return nil
	}
	out := make([]*node, c.tip.height())
	for n := c.tip; n != nil; n = n.parent {
		out[n.height()-1] = n
	}
	return out
}

// Counted reports whether credit id counts on the best chain.
func (c *Chain) Counted(id CreditID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.credits[id] {
		if c.tip != nil && ancestorAt(c.tip, n.height()) == n {
			return true
		}
	}
	return false
}

// Slash records a verified fraud proof against relay fp at best-chain
// height h (spec 12 §7.2): its shares in every block not yet paid at h are
// void. The record persists with the chain's store.
func (c *Chain) Slash(ctx context.Context, fp keys.Fingerprint, h uint64, proof []byte) error {
	c.addMu.Lock()
	defer c.addMu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.slashed[fp]; ok && old <= h {
		return nil
	}
	if c.db != nil {
		if err := c.db.write(ctx, func(tx *writeTx) error {
			_, err := tx.Exec("INSERT OR REPLACE INTO slashes(fingerprint, height, proof) VALUES (?,?,?)", fp[:], int64(h), proof)
			return err
		}); err != nil {
			return fmt.Errorf("sharechain: slash: %w", err)
		}
	}
	c.slashed[fp] = h
	c.slashVersion++
	return nil
}

// Blocks returns every block of the chain, best chain or not, in height
// order.
func (c *Chain) Blocks() []*Block {
	c.mu.Lock()
	out := make([]*Block, 0, len(c.nodes))
	for _, n := range c.nodes {
		out = append(out, n.b)
	}
	c.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Height < out[j].Height })
	return out
}

// ProducedBy returns the blocks relay fp produced, in height order.
func (c *Chain) ProducedBy(fp keys.Fingerprint) []*Block {
	var out []*Block
	for _, b := range c.Blocks() {
		if b.Fingerprint() == fp {
			out = append(out, b)
		}
	}
	return out
}
