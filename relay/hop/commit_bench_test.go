package hop_test

import (
	"testing"

	"github.com/unfed/unfed/compute/model"
	"github.com/unfed/unfed/compute/tensor"
	"github.com/unfed/unfed/relay/hop"
	"github.com/unfed/unfed/relay/verify"
)

// BenchmarkCommittedStep is one decode step through three stories260K hops
// in process, with commitments off and on (each hop hashes, signs and sends
// a COMMIT; the client verifies three). Use -benchtime ≤ 400x (the model's
// context).
func BenchmarkCommittedStep(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			skipCommitOn = !on
			defer func() { skipCommitOn = false }()
			r := newAuditRun(b, testShards(b), hop.F32, [32]byte{5}, nil)
			step := r.step
			if !on {
				step = r.plainStep
			}
			next := step(prompt(b))
			for b.Loop() {
				next = step([]int{next})
			}
		})
	}
}

// plainStep is step without commitments: one TOKENS, one LOGITS.
func (r *auditRun) plainStep(ids []int) int {
	r.c.send(0, &hop.Tokens{Start: r.pos, IDs: ids})
	_, m := r.c.recv()
	lg, ok := m.(*hop.Logits)
	if !ok {
		r.t.Fatalf("got %v", m.Type())
	}
	r.pos += len(ids)
	return greedy(lg)
}

// BenchmarkCheckTicket is a verifier's cost for one ticket of the middle
// hop (layers [2,4) of stories260K) at step 64 of a session, on the portable
// path and, for comparison, on the relays' kernels; ticket-bytes is the
// ticket's size.
func BenchmarkCheckTicket(b *testing.B) {
	r := newAuditRun(b, testShards(b), hop.F32, [32]byte{6}, nil)
	next := r.step(prompt(b))
	for range 63 {
		next = r.step([]int{next})
	}
	tk := r.ticket(1, 63, 0)
	check := loadShard(b, 2, 4, model.Limits{})
	for _, portable := range []bool{true, false} {
		name := "kernels"
		if portable {
			name = "portable"
		}
		b.Run(name, func(b *testing.B) {
			if portable {
				defer tensor.UsePortable()()
			}
			for b.Loop() {
				if v, err := verify.Check(tk, check); err != nil || v != verify.Honest {
					b.Fatal(v, err)
				}
			}
			b.ReportMetric(float64(len(tk.Append(nil))), "ticket-bytes")
		})
	}
}
