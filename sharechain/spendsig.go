package sharechain

// Spend signatures (spec 12 §2.5) are verified under RFC 8032's cofactored
// equation (FIPS 186-5), the one rule batch verification decides exactly:
// a relay checks the spend signatures of concurrently arriving payments, and
// a node those of a block's entries, in one batch each (curve25519-voi's
// random-linear-combination check), and falls back to checking each alone
// when a batch fails, so a bad signature fails only its own entry. Pay and
// block validation apply the same rule, so a relay never accepts a payment
// whose entry its peers would refuse in its block.

import (
	"runtime"
	"sync"

	"github.com/unfed/unfed/relay/keys"

	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

// spendOpts is the verification rule of spec 12 §2.5: cofactored, canonical
// encodings of A and R, small-order points allowed (FIPS 186-5).
var spendOpts = &voi.Options{Verify: voi.VerifyOptionsFIPS_186_5}

// spendCheck is one spend signature to verify: the credit's one-time public
// key (its nonce), the spend message and the signature.
type spendCheck struct {
	pub, msg, sig []byte
}

// spendCheckOf returns the check of e's spend signature for relay fp.
func spendCheckOf(e Entry, fp keys.Fingerprint) spendCheck {
	return spendCheck{pub: e.Credit.Nonce[:], msg: SpendMessage(e.Credit.ID(), fp, e.Units), sig: e.SpendSig}
}

// verifySpendSig verifies one spend signature alone.
func verifySpendSig(c spendCheck) bool {
	if len(c.pub) != voi.PublicKeySize || len(c.sig) != voi.SignatureSize {
		return false
	}
	return voi.VerifyWithOptions(voi.PublicKey(c.pub), c.msg, c.sig, spendOpts)
}

// maxSpendBatch bounds one batch verification (its cost per signature
// stops falling well before this).
const maxSpendBatch = 256

// verifySpends reports for each check whether its signature verifies:
// checks in batches of up to maxSpendBatch, and each check of a batch that
// fails alone (spendFallback).
func verifySpends(cs []spendCheck) []bool {
	ok := make([]bool, len(cs))
	for lo := 0; lo < len(cs); lo += maxSpendBatch {
		hi := min(lo+maxSpendBatch, len(cs))
		if hi-lo > 1 && batchVerifies(cs[lo:hi]) {
			for i := lo; i < hi; i++ {
				ok[i] = true
			}
			continue
		}
		spendFallback(cs[lo:hi], ok[lo:hi])
	}
	return ok
}

// batchVerifies reports whether every signature of cs verifies, by one
// batch equation with random coefficients; false says only that at least
// one does not (or is malformed).
func batchVerifies(cs []spendCheck) bool {
	v := voi.NewBatchVerifierWithCapacity(len(cs)).ForceNoPublicKeyExpansion() // one-time keys: expanding them costs more than it saves
	for _, c := range cs {
		if len(c.pub) != voi.PublicKeySize || len(c.sig) != voi.SignatureSize {
			return false
		}
		v.AddWithOptions(voi.PublicKey(c.pub), c.msg, c.sig, spendOpts)
	}
	return v.VerifyBatchOnly(nil)
}

// spendFallback checks each signature of a failed batch alone. A variable
// only so that a test can show that accepting a failed batch is caught.
var spendFallback = func(cs []spendCheck, ok []bool) {
	for i, c := range cs {
		ok[i] = verifySpendSig(c)
	}
}

// spendBatcher verifies the spend signatures of concurrently arriving
// payments in batches. A caller queues its check; while fewer than
// maxLeaders callers lead, one more takes a share of the queue (an equal
// part for each leader, at most maxSpendBatch) and verifies it as one
// batch, then answers its callers. A leader that finishes stops leading and
// hands any checks queued meanwhile, a share at a time, to the first caller
// of each share, so no caller waits for more than a batch before its own.
// A lone caller verifies its own signature at once.
type spendBatcher struct {
	mu         sync.Mutex
	queue      []*spendWait
	leaders    int
	maxLeaders int
}

type spendWait struct {
	check spendCheck
	ok    bool
	done  chan bool    // true: ok is set; false: lead next
	next  []*spendWait // the batch handed over with the lead
}

func newSpendBatcher(maxLeaders int) *spendBatcher {
	return &spendBatcher{maxLeaders: max(1, maxLeaders)}
}

// verify reports whether c's signature verifies.
func (b *spendBatcher) verify(c spendCheck) bool {
	w := &spendWait{check: c, done: make(chan bool, 1)}
	b.mu.Lock()
	b.queue = append(b.queue, w)
	lead := b.leaders < b.maxLeaders
	if lead {
		b.leaders++
	}
	b.mu.Unlock()
	if lead {
		// Let the callers that are ready to run queue their checks first:
		// while the leaders keep every core busy verifying, the others
		// would only arrive one at a time, each leading a batch of one.
		// Alone, this returns at once.
		runtime.Gosched()
		b.mu.Lock()
		batch := b.share()
		b.spread()
		b.mu.Unlock()
		b.lead(batch)
	}
	for !<-w.done {
		b.lead(w.next)
	}
	return w.ok
}

// share removes a leader's share of the queue (possibly none). Called with
// mu held.
func (b *spendBatcher) share() []*spendWait {
	n := min(len(b.queue), maxSpendBatch, (len(b.queue)+b.maxLeaders-1)/b.maxLeaders)
	batch := append([]*spendWait(nil), b.queue[:n]...)
	b.queue = append(b.queue[:0], b.queue[n:]...)
	return batch
}

// spread hands shares of the queue to new leaders while there is room for
// them. Called with mu held.
func (b *spendBatcher) spread() {
	for b.leaders < b.maxLeaders && len(b.queue) > 0 {
		b.leaders++
		next := b.share()
		next[0].next = next
		next[0].done <- false
	}
}

// lead verifies batch, answers its callers and stops leading.
func (b *spendBatcher) lead(batch []*spendWait) {
	cs := make([]spendCheck, len(batch))
	for i, w := range batch {
		cs[i] = w.check
	}
	ok := verifySpends(cs)
	for i, w := range batch {
		w.ok = ok[i]
		w.done <- true
	}
	b.mu.Lock()
	b.leaders--
	b.spread()
	b.mu.Unlock()
}
