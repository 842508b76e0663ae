package verify

// Binding is what both ends of a committed session know before its first
// step (spec/11 §2.4): the hop from its SETUP and COMMIT_ON, the client
// from what it sent and from the consensus (the identity key).
type Binding struct {
	ModelID  string
	First    int
	Last     int
	InKind   Kind
	OutKind  Kind
	Nonce    [32]byte
	Identity [32]byte
}

// Chain follows one session's input and output chains step by step
// (spec/11 §2.3). A
// hop uses it to build the commitments it signs, its client to rebuild
// them from the COMMIT messages and check their signatures. The zero
// value of the chain state is the session's start.
type Chain struct {
	Binding
	chain    [32]byte
	outChain [32]byte
	next     int         // the position the next step must start at
	marks    []chainMark // one per step, for Truncate
}

type chainMark struct {
	start   int
	prev    [32]byte
	prevOut [32]byte
}

// maxMarks bounds the steps a Chain remembers for Truncate; a session
// with more steps can no longer be truncated below the oldest kept one.
const maxMarks = 1 << 16

// NewChain returns the chain of a fresh session bound to b.
func NewChain(b Binding) *Chain { return &Chain{Binding: b} }

// Next reports the position the next step must start at.
func (c *Chain) Next() int { return c.next }

// Commitment returns the commitment of step s (without its signature) and
// advances the chain past it. It reports false, advancing nothing, when s
// does not start where the previous step ended.
func (c *Chain) Commitment(s *Step) (*Commitment, bool) {
	if s.Start != c.next || s.Count < 1 || s.Start+s.Count > MaxPositions {
		return nil, false
	}
	if len(c.marks) == maxMarks {
		c.marks = append(c.marks[:0], c.marks[1:]...)
	}
	c.marks = append(c.marks, chainMark{start: s.Start, prev: c.chain, prevOut: c.outChain})
	c.chain = ChainNext(c.chain, s.Start, s.Count, s.In)
	c.outChain = OutChainNext(c.outChain, s.Start, s.Count, s.Out)
	c.next = s.Start + s.Count
	b := &c.Binding
	return &Commitment{ModelID: b.ModelID, First: b.First, Last: b.Last, Start: s.Start, Count: s.Count,
		InKind: b.InKind, OutKind: b.OutKind, Nonce: b.Nonce, InChain: c.chain, In: s.In, Out: s.Out, OutChain: c.outChain,
		Identity: b.Identity, Sig: s.Sig}, true
}

// Truncate rewinds the chain to position pos (a TRUNCATE, spec/03 §3.5).
// It reports false when pos is not the start of a remembered step or the
// current end; the session can then make no more commitments.
func (c *Chain) Truncate(pos int) bool {
	if pos == c.next {
		return true
	}
	for i := len(c.marks) - 1; i >= 0; i-- {
		if c.marks[i].start == pos {
			c.chain, c.outChain, c.next = c.marks[i].prev, c.marks[i].prevOut, pos
			c.marks = c.marks[:i]
			return true
		}
	}
	return false
}
