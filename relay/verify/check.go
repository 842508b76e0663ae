package verify

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/unfed/unfed/compute/model"
	"github.com/unfed/unfed/compute/tensor"
)

// Verdict is the outcome of re-executing a valid ticket.
type Verdict uint8

// Verdicts.
const (
	// Honest: re-execution gave the committed output, bit for bit.
	Honest Verdict = iota + 1
	// Fraud: it did not; the ticket is a fraud proof against the
	// commitment's identity.
	Fraud
)

func (v Verdict) String() string {
	switch v {
	case Honest:
		return "honest"
	case Fraud:
		return "fraud"
	}
	return "verdict(?)"
}

// Errors of Check that say the ticket proves nothing (spec/11 §4.2). They
// cost the checker at most the hashing of the ticket.
var (
	// ErrSignature: the commitment's signature does not verify.
	ErrSignature = errors.New("verify: commitment signature does not verify")
	// ErrInputs: the inputs do not hash to the committed input chain.
	ErrInputs = errors.New("verify: inputs do not match the commitment")
	// ErrShard: the shard given is not the committed layer range.
	ErrShard = errors.New("verify: shard does not match the commitment")
)

// Check re-executes the steps of t on sh, a shard of the commitment's
// model (the caller matches the model id), and compares every step's
// output hash, folded into the output chain, and the last step's exactly
// with the commitment (spec/11 §4). In order, each check costing more than
// the one before: the one signature, the shard, the input chain (hashing),
// and only then the forward passes over the session prefix. An error means
// the ticket proves nothing (or the shard could not run it); a verdict
// means it was valid.
func Check(t *Ticket, sh *model.Shard) (Verdict, error) {
	c := t.Commitment
	if !c.Verify() {
		return 0, ErrSignature
	}
	cfg := sh.Config()
	switch {
	case sh.First() != c.First || sh.Last() != c.Last:
		return 0, fmt.Errorf("%w: layers [%d,%d), shard [%d,%d)", ErrShard, c.First, c.Last, sh.First(), sh.Last())
	case sh.IsLast() != c.OutKind.last():
		return 0, fmt.Errorf("%w: output %v from layers [%d,%d)", ErrShard, c.OutKind, c.First, c.Last)
	case c.InKind != KindTokens && t.Dim != cfg.Dim:
		return 0, fmt.Errorf("%w: inputs of width %d, model %d", ErrShard, t.Dim, cfg.Dim)
	}
	inputs, err := checkInputs(t, cfg.Vocab)
	if err != nil {
		return 0, err
	}
	ms, err := sh.NewSession(model.SessionOptions{MaxContext: c.Start + c.Count, FinalHidden: c.OutKind == KindFinal})
	if err != nil {
		return 0, fmt.Errorf("verify: session: %w", err)
	}
	defer ms.Close()
	var out []float32
	var outChain, last [32]byte
	h := NewHasher(c.OutKind)
	for i, s := range t.Steps {
		if c.InKind == KindTokens {
			out, err = ms.ForwardTokens(inputs[i].ids, s.Start)
		} else {
			out, err = ms.ForwardActivations(inputs[i].rows, s.Count, s.Start)
		}
		if err != nil {
			return 0, fmt.Errorf("verify: re-execution of [%d,+%d): %w", s.Start, s.Count, err)
		}
		h.Floats(out)
		last = h.Sum()
		outChain = OutChainNext(outChain, s.Start, s.Count, last)
	}
	if last != c.Out || (outChain != c.OutChain && !mutateIgnoreOutChain) {
		return Fraud, nil
	}
	return Honest, nil
}

// mutateIgnoreOutChain, set only by this package's tests, makes Check
// compare the last output alone, as revision 1 would with only the last
// commitment: the tests show that they then miss a wrong earlier output.
var mutateIgnoreOutChain = false

type decoded struct {
	ids  []int
	rows []float32
}

// checkInputs decodes every step's input, hashing it as the hop did, and
// compares the chain and the last step's hash with the commitment.
func checkInputs(t *Ticket, vocab int) ([]decoded, error) {
	c := t.Commitment
	h := NewHasher(c.InKind)
	var chain, in [32]byte
	out := make([]decoded, len(t.Steps))
	for i, s := range t.Steps {
		d := &out[i]
		if c.InKind == KindTokens {
			d.ids = make([]int, s.Count)
			for j := range d.ids {
				id := binary.BigEndian.Uint32(s.Data[4*j:])
				if int64(id) >= int64(vocab) {
					return nil, fmt.Errorf("%w: token id outside the vocabulary", ErrInputs)
				}
				d.ids[j] = int(id)
			}
			h.Tokens(d.ids)
		} else {
			d.rows = DecodeFloats(c.InKind, s.Data)
			h.Floats(d.rows)
		}
		in = h.Sum()
		chain = ChainNext(chain, s.Start, s.Count, in)
	}
	if chain != c.InChain || in != c.In {
		return nil, ErrInputs
	}
	return out, nil
}

// DecodeFloats decodes little-endian f32 or binary16 (KindF16) values.
func DecodeFloats(k Kind, b []byte) []float32 {
	if k == KindF16 {
		vs := make([]float32, len(b)/2)
		for i := range vs {
			vs[i] = tensor.F16ToF32(binary.LittleEndian.Uint16(b[2*i:]))
		}
		return vs
	}
	vs := make([]float32, len(b)/4)
	for i := range vs {
		vs[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return vs
}

// CheckInputs checks that t's inputs hash to its commitment's input chain
// and last input hash (step 3 of spec/11 §4.1, without the vocabulary
// bound): a client checks the rows a REVEAL returned before it submits.
func CheckInputs(t *Ticket) error {
	_, err := checkInputs(t, math.MaxInt32)
	return err
}
