package hop_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/unfed/unfed/compute/model"
	"github.com/unfed/unfed/compute/tensor"
	"github.com/unfed/unfed/relay/cell"
	"github.com/unfed/unfed/relay/hop"
	"github.com/unfed/unfed/relay/hop/hoptest"
	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/relay/verify"
)

// auditRun drives a committed anonymous chain (spec/11 §2) as a client
// would: it checks every COMMIT (signature, and hop i's output hash against
// hop i+1's input hash) and can build the ticket of any hop's step.
type auditRun struct {
	t       testing.TB
	c       *client
	chain   *hoptest.Chain
	shards  []*model.Shard
	setups  []*hop.Setup
	chains  []*verify.Chain
	commits [][]*verify.Commitment // per hop, per step
	starts  [][]int                // per hop, each step's start
	tokens  []byte                 // the token ids sent so far, u32 big-endian
	pos     int
}

func newAuditRun(t testing.TB, shards []*model.Shard, dt hop.DType, nonce [32]byte, mod func(i int, cfg *hop.Config)) *auditRun {
	t.Helper()
	hops, ids, _ := newSigningServices(t, shards, mod)
	return newAuditRunOn(t, shards, hops, ids, dt, nonce)
}

// newSigningServices makes a Service for each shard with an identity of its
// own (mod, when set, changes each one's configuration further).
func newSigningServices(t testing.TB, shards []*model.Shard, mod func(i int, cfg *hop.Config)) ([]hoptest.Hop, []*keys.Identity, []*hop.Service) {
	t.Helper()
	hops := make([]hoptest.Hop, len(shards))
	ids := make([]*keys.Identity, len(shards))
	svcs := make([]*hop.Service, len(shards))
	for i, sh := range shards {
		id, err := keys.NewIdentity(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
		svcs[i] = newService(t, sh, func(cfg *hop.Config) {
			cfg.Identity = id
			if mod != nil {
				mod(i, cfg)
			}
		})
		hops[i] = svcs[i]
	}
	return hops, ids, svcs
}

// newAuditRunOn is newAuditRun on hops already made, with identities ids: a
// new circuit through the same services.
func newAuditRunOn(t testing.TB, shards []*model.Shard, hops []hoptest.Hop, ids []*keys.Identity, dt hop.DType, nonce [32]byte) *auditRun {
	t.Helper()
	r := &auditRun{t: t, shards: shards}
	hops = slices.Clone(hops)
	for i, sh := range shards {
		id := ids[i]
		b := verify.Binding{ModelID: modelID, First: sh.First(), Last: sh.Last(), Nonce: nonce,
			InKind: verify.KindF32, OutKind: verify.KindF32}
		if dt == hop.F16 {
			b.OutKind = verify.KindF16
		}
		if i > 0 {
			b.InKind = r.chains[i-1].OutKind
		} else {
			b.InKind = verify.KindTokens
		}
		if sh.IsLast() {
			b.OutKind = verify.KindLogits
		}
		copy(b.Identity[:], id.Public)
		r.chains = append(r.chains, verify.NewChain(b))
	}
	r.commits = make([][]*verify.Commitment, len(shards))
	r.starts = make([][]int, len(shards))
	if wrapHop != nil {
		for i := range hops {
			hops[i] = wrapHop(i, hops[i])
		}
	}
	r.chain = hoptest.NewChain(9, hops...)
	t.Cleanup(r.chain.Close)
	r.c = chainClient(t, r.chain)
	r.setups = plainSetups(t, shards, dt, 1)
	r.c.setupAll(r.setups)
	for i := range shards {
		if !skipCommitOn {
			r.c.send(i, &hop.CommitOn{Nonce: nonce})
		}
	}
	return r
}

// skipCommitOn makes newAuditRun leave commitments off (the baseline of
// BenchmarkCommittedStep).
var skipCommitOn bool

// wrapHop, when set, wraps each hop newAuditRun starts.
var wrapHop func(i int, h hoptest.Hop) hoptest.Hop

// orderHop logs, in order, what the hop it wraps sends: "COMMIT" and the
// other message types to the client, "edge" for edge messages.
type orderHop struct {
	h   hoptest.Hop
	mu  sync.Mutex
	log []string
}

func (o *orderHop) Deliver(c hop.Circuit, m hop.Inbound) { o.h.Deliver(orderCircuit{c, o}, m) }
func (o *orderHop) Closed(c hop.Circuit)                 { o.h.Closed(orderCircuit{c, o}) }

func (o *orderHop) add(s string) {
	o.mu.Lock()
	o.log = append(o.log, s)
	o.mu.Unlock()
}

type orderCircuit struct {
	hop.Circuit
	o *orderHop
}

func (c orderCircuit) Send(ctx context.Context, msg []byte) error {
	if m, err := hop.Decode(msg); err == nil {
		if _, ok := m.(*hop.Commit); ok {
			c.o.add("COMMIT")
		} else {
			c.o.add(m.Type().String())
		}
	}
	return c.Circuit.Send(ctx, msg)
}

func (c orderCircuit) SendEdge(ctx context.Context, dir cell.Direction, hops int, msg []byte) error {
	c.o.add("edge")
	return c.Circuit.SendEdge(ctx, dir, hops, msg)
}

// TestCommitBeforeOutput: a hop that is not the last sends each step's
// COMMIT before any of the step's ACTIVATIONS (spec/11 §2.4).
func TestCommitBeforeOutput(t *testing.T) {
	var logs []*orderHop
	wrapHop = func(i int, h hoptest.Hop) hoptest.Hop {
		o := &orderHop{h: h}
		logs = append(logs, o)
		return o
	}
	defer func() { wrapHop = nil }()
	r := newAuditRun(t, testShards(t), hop.F32, [32]byte{7}, nil)
	ids := make([]int, 40)
	for i := range ids {
		ids[i] = 1 + i%30
	}
	next := r.step(ids)
	r.step([]int{next})
	for i, o := range logs[:len(logs)-1] {
		o.mu.Lock()
		got := strings.Join(o.log, " ")
		o.mu.Unlock()
		if got != "SETUP_OK COMMIT edge COMMIT edge" {
			t.Errorf("hop %d sent %q, want SETUP_OK, then per step its COMMIT before its ACTIVATIONS", i, got)
		}
	}
}

// step sends ids, checks the LOGITS and one COMMIT per hop, and returns the
// greedy next token.
func (r *auditRun) step(ids []int) int {
	r.t.Helper()
	r.c.send(0, &hop.Tokens{Start: r.pos, IDs: ids})
	var lg *hop.Logits
	got := 0
	for lg == nil || got < len(r.shards) {
		i, m := r.c.recv()
		switch m := m.(type) {
		case *hop.Logits:
			lg = m
		case *hop.Commit:
			c, ok := r.chains[i].Commitment(&m.Step)
			if !ok || !c.Verify() {
				r.t.Fatalf("hop %d: commitment of [%d,+%d) does not verify", i, m.Start, m.Count)
			}
			r.commits[i] = append(r.commits[i], c)
			r.starts[i] = append(r.starts[i], c.Start)
			got++
		default:
			r.t.Fatalf("hop %d sent %v", i, m.Type())
		}
	}
	k := len(r.commits[0]) - 1
	for i := 1; i < len(r.shards); i++ {
		if len(r.commits[i]) != k+1 || r.commits[i][k].In != r.commits[i-1][k].Out {
			r.t.Fatalf("step %d: hop %d's input hash is not hop %d's output hash", k, i, i-1)
		}
	}
	for _, id := range ids {
		r.tokens = binary.BigEndian.AppendUint32(r.tokens, uint32(id))
	}
	r.pos += len(ids)
	return greedy(lg)
}

// ticket builds hop i's ticket for its step k; the inputs of hop i > 0 come
// from hop src (REVEAL), which must be hop i-1 for them to be right.
func (r *auditRun) ticket(i, k, src int) *verify.Ticket {
	r.t.Helper()
	c := r.commits[i][k]
	end := c.Start + c.Count
	var prefix []byte
	dim := 0
	if i == 0 {
		prefix = r.tokens[:4*end]
	} else {
		r.c.send(src, &hop.Reveal{Start: 0, Count: end})
		for {
			from, m := r.c.recv()
			rv, ok := m.(*hop.Revealed)
			if !ok || from != src {
				r.t.Fatalf("hop %d answered REVEAL with %v", from, m.Type())
			}
			dim = rv.Dim
			prefix = verify.AppendFloats(prefix, c.InKind, rv.Data)
			if rv.Final {
				break
			}
		}
	}
	tk, err := verify.NewTicket(c, dim, r.starts[i][:k+1], prefix)
	if err != nil {
		r.t.Fatal(err)
	}
	// Through the codec, as a verifier receives it.
	back, err := verify.DecodeTicket(tk.Append(nil))
	if err != nil {
		r.t.Fatal(err)
	}
	return back
}

func testShards(t testing.TB) []*model.Shard {
	return []*model.Shard{loadShard(t, 0, 2, model.Limits{}), loadShard(t, 2, 4, model.Limits{}), loadShard(t, 4, 5, model.Limits{})}
}

// generate runs the prompt and n greedy steps.
func (r *auditRun) generate(n int) {
	r.t.Helper()
	next := r.step(prompt(r.t))
	for range n {
		next = r.step([]int{next})
	}
}

// checkAll re-executes every step of every hop on the portable path with
// fresh shards and returns the verdicts, per hop.
func checkAll(t *testing.T, r *auditRun) [][]verify.Verdict {
	t.Helper()
	fresh := testShards(t)
	var tickets [][]*verify.Ticket
	for i := range r.shards {
		var ts []*verify.Ticket
		for k := range r.commits[i] {
			ts = append(ts, r.ticket(i, k, i-1))
		}
		tickets = append(tickets, ts)
	}
	restore := tensor.UsePortable()
	defer restore()
	out := make([][]verify.Verdict, len(r.shards))
	for i, ts := range tickets {
		for _, tk := range ts {
			v, err := verify.Check(tk, fresh[i])
			if err != nil {
				t.Fatalf("hop %d step at %d: %v", i, tk.Commitment.Start, err)
			}
			out[i] = append(out[i], v)
		}
	}
	return out
}

// TestCommitmentsHonest: every hop commits to every step, the hashes chain
// from hop to hop, and every step of every hop re-executes on the portable
// path to its committed output (no false positive), f32 and f16 edges.
func TestCommitmentsHonest(t *testing.T) {
	for _, dt := range []hop.DType{hop.F32, hop.F16} {
		t.Run(dt.String(), func(t *testing.T) {
			r := newAuditRun(t, testShards(t), dt, [32]byte{1}, nil)
			r.generate(6)
			for i, vs := range checkAll(t, r) {
				for k, v := range vs {
					if v != verify.Honest {
						t.Fatalf("honest hop %d step %d judged %v", i, k, v)
					}
				}
			}
		})
	}
}

// TestCommitmentsCatchCheater: hop 1 corrupts its output from step 3 on and
// commits to what it sends (else the client would see the chain break):
// re-execution finds exactly the corrupted steps, and the ticket is a fraud
// proof that an independent check (another shard) confirms. Tampered
// tickets prove nothing.
func TestCommitmentsCatchCheater(t *testing.T) {
	shards := testShards(t)
	defer hop.SetCorrupt(func(cfg *hop.Config, out []float32, step int) {
		if cfg.Shard == shards[1] && step >= 3 {
			out[len(out)/2] += 0.5
		}
	})()
	r := newAuditRun(t, shards, hop.F32, [32]byte{2}, nil)
	r.generate(5)
	verdicts := checkAll(t, r)
	for i, vs := range verdicts {
		for k, v := range vs {
			want := verify.Honest
			if i == 1 && k >= 3 {
				want = verify.Fraud
			}
			if v != want {
				t.Fatalf("hop %d step %d judged %v, want %v", i, k, v, want)
			}
		}
	}

	proof := r.ticket(1, 4, 0)
	other := loadShard(t, 2, 4, model.Limits{})
	if v, err := verify.Check(proof, other); err != nil || v != verify.Fraud {
		t.Fatalf("fraud proof re-checked: %v, %v", v, err)
	}
	// A flipped output hash breaks the signature; a changed input breaks
	// the chain; the wrong shard is refused before any forward pass.
	forged := r.ticket(1, 4, 0)
	forged.Commitment.Out[0] ^= 1
	if _, err := verify.Check(forged, other); !errors.Is(err, verify.ErrSignature) {
		t.Fatalf("forged commitment: %v", err)
	}
	forged = r.ticket(1, 4, 0)
	forged.Steps[0].Data[0] ^= 1
	if _, err := verify.Check(forged, other); !errors.Is(err, verify.ErrInputs) {
		t.Fatalf("changed inputs: %v", err)
	}
	if _, err := verify.Check(r.ticket(1, 4, 0), shards[2]); !errors.Is(err, verify.ErrShard) {
		t.Fatalf("wrong shard: %v", err)
	}
}

// viewOf records what one hop receives: the kind and plaintext of every
// client message and opened edge message (envelopes differ between runs
// only by their keys, which are fresh per circuit).
type viewOf struct {
	mu  sync.Mutex
	log []string
}

func (v *viewOf) observe(o hop.Observation) {
	if o.Kind == hop.ObsEdge {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	data := o.Data
	if o.Kind == hop.ObsClient && len(data) > 0 && data[0] == byte(hop.TypeSetup) {
		data = data[:1] // the edge secrets are fresh per circuit
	}
	v.log = append(v.log, fmt.Sprintf("%d %d %x", o.Kind, len(o.Data), data))
}

// auditedView runs the prompt and 6 steps; with audit, after every step the
// client gathers the ticket of hop 1's step, asking hop src for the inputs.
// It returns what hop 1 saw.
func auditedView(t *testing.T, audit bool, src int) []string {
	v := &viewOf{}
	r := newAuditRun(t, testShards(t), hop.F32, [32]byte{3}, func(i int, cfg *hop.Config) {
		if i == 1 {
			cfg.Observe = v.observe
		}
	})
	next := r.step(prompt(t))
	for k := 1; k <= 6; k++ {
		next = r.step([]int{next})
		if audit {
			r.ticket(1, k, src)
		}
	}
	r.chain.Close()
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.log
}

// TestAuditedStepsIndistinguishable: the checked hop's view (every message,
// its size and content, in order) is the same whether or not its steps are
// audited, because the inputs come from the hop before it. Asking the
// checked hop itself (the mutation) changes its view.
func TestAuditedStepsIndistinguishable(t *testing.T) {
	plain := auditedView(t, false, 0)
	if audited := auditedView(t, true, 0); !equalViews(plain, audited) {
		for i := range min(len(plain), len(audited)) {
			if plain[i] != audited[i] {
				t.Logf("message %d: %.80s vs %.80s", i, plain[i], audited[i])
			}
		}
		t.Fatalf("hop 1's view differs when it is audited: %d vs %d messages", len(plain), len(audited))
	}
	if leaky := auditedView(t, true, 1); equalViews(plain, leaky) {
		t.Fatal("asking the checked hop for the inputs did not change its view: the test cannot see a leak")
	}
}

func equalViews(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal([]byte(a[i]), []byte(b[i])) {
			return false
		}
	}
	return true
}

// TestCommitmentsCatchLayerSkipper: the middle hop passes its input on
// instead of running its layers (and commits to that): every one of its
// steps re-executes to Fraud, the other hops' to Honest.
func TestCommitmentsCatchLayerSkipper(t *testing.T) {
	shards := testShards(t)
	defer hop.SetSkipLayers(func(cfg *hop.Config) bool { return cfg.Shard == shards[1] })()
	r := newAuditRun(t, shards, hop.F16, [32]byte{4}, nil)
	r.generate(3)
	for i, vs := range checkAll(t, r) {
		for k, v := range vs {
			if want := map[bool]verify.Verdict{true: verify.Fraud, false: verify.Honest}[i == 1]; v != want {
				t.Fatalf("hop %d step %d judged %v, want %v", i, k, v, want)
			}
		}
	}
}

// TestSpareBuffersSameOutputs: a relay keeps a closed compute session's
// message buffers and kept rows for the next session (Service spares); the
// sessions that reuse them send the same bits (LOGITS, COMMIT hashes and
// REVEALED rows) as the first, which had fresh ones.
func TestSpareBuffersSameOutputs(t *testing.T) {
	shards := testShards(t)
	hops, ids, svcs := newSigningServices(t, shards, nil)
	var ref string
	for run := range 3 {
		r := newAuditRunOn(t, shards, hops, ids, hop.F32, [32]byte{9})
		next := r.step(prompt(t))
		next = r.step([]int{next})
		got := fmt.Sprint(next)
		for i := range shards {
			for _, c := range r.commits[i] {
				got += fmt.Sprintf(" %x %x", c.In, c.Out)
			}
		}
		// The first hop's kept rows, as REVEAL returns them.
		r.c.send(0, &hop.Reveal{Start: 0, Count: r.pos})
		for {
			_, m := r.c.recv()
			rv := m.(*hop.Revealed)
			got += fmt.Sprint(rv.Data[:4], rv.Data[len(rv.Data)-4:])
			if rv.Final {
				break
			}
		}
		r.chain.Close()
		if run == 0 {
			ref = got
		} else if got != ref {
			t.Fatalf("run %d with spare buffers differs from the first", run)
		}
		for i, s := range svcs {
			if n := hop.SpareBufs(s); n < 1 {
				t.Fatalf("run %d: hop %d kept %d spare buffers after its sessions closed", run, i, n)
			}
		}
	}
}
