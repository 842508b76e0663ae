// Package verifier is the verifier role of unfed-relay
// (spec/11-verification.md §3.5, §4): it takes tickets clients submit over
// circuits, re-executes each committed step and, when a step was computed
// wrongly, sends the fraud proof to the directory authorities.
//
// What a submitter can make a verifier spend is bounded: a ticket is at
// most MaxTicket bytes; the cheap checks (layout, model, that the signer is
// a compute relay of the consensus serving exactly the committed range, the
// signature, replay) run on the receiving goroutine and cost a decode, a
// lookup and one signature check; only a ticket passing them is queued, the
// queue is bounded, a circuit may queue at most PerCircuit tickets, and one
// worker re-executes, one ticket at a time. Re-execution runs the shard
// with the relay kernels first and confirms a Fraud verdict on the portable
// path (tensor.UsePortable) before any proof leaves: the determinism
// contract makes both give the same bits, so the verdict never rests on the
// kernels under test, and the honest common case costs one fast forward
// pass over the prefix.
//
// Party tickets (spec/11 §7.4) take the same path: the signer must be an
// MPC party (role mpc) of exactly the committed stage, and re-execution
// runs the party's side with compute/mpc's party code (integer arithmetic,
// whose kernels give the bits of their portable loops: one run decides).
package verifier

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/unfed/unfed/compute/model"
	"github.com/unfed/unfed/compute/mpc"
	"github.com/unfed/unfed/compute/tensor"
	"github.com/unfed/unfed/relay/verify"
)

// Signer says whether identity is a compute relay of the current consensus
// serving exactly [first, last) of model, and not flagged BadCompute.
type Signer func(identity [32]byte, model string, first, last int) bool

// ShardLoader returns a shard of the verifier's model covering [first,
// last) and a function to call when done with it.
type ShardLoader func(first, last int) (*model.Shard, func(), error)

// StageLoader returns the prepared fixed-point weights (mpc.Params{}) of
// the confidential stage [first, last) of the verifier's model and a
// function to call when done with them.
type StageLoader func(first, last int) (*mpc.PreparedStage, func(), error)

// Config configures a Verifier.
type Config struct {
	// ModelID is the model this verifier holds the weights of.
	ModelID string
	// Load returns a shard of the model for a committed range.
	Load ShardLoader
	// Signer checks the commitment's identity against the consensus.
	Signer Signer
	// PartySigner checks a party commitment's identity against the
	// consensus: a relay of role mpc serving exactly that stage of the
	// model, not flagged BadCompute. Nil: party tickets are refused.
	PartySigner Signer
	// LoadStage returns a stage's prepared weights for party tickets;
	// required with PartySigner.
	LoadStage StageLoader
	// Layers is the model's layer count (a stage ending there is the
	// last); required with PartySigner.
	Layers int
	// Prove sends a fraud proof (a ticket whose re-execution gave Fraud)
	// to the authorities.
	Prove func(ctx context.Context, proof []byte) error
	// MaxTicket bounds a ticket's size (0: 16 MiB).
	MaxTicket int
	// Queue bounds the tickets waiting for re-execution (0: 64).
	Queue int
	// PerCircuit bounds the tickets one circuit may submit (0: 64).
	PerCircuit int
	// Portable re-executes every ticket on the portable path only
	// (tensor.UsePortable): slower, and the verdict never rests on the
	// assembly kernels at all.
	Portable bool
	// Logger logs verdicts; nil discards.
	Logger *slog.Logger
	// Checked, when set, is called after each re-execution.
	Checked func(v verify.Verdict, err error)
}

// Limits' defaults.
const (
	defaultMaxTicket  = 16 << 20
	defaultQueue      = 64
	defaultPerCircuit = 64
	// maxSeen bounds the commitment IDs remembered against replays; when
	// full they are all forgotten (a replay then costs one re-execution).
	maxSeen = 1 << 16
	// provenFor is how long tickets of a signer a proof was sent against
	// are refused: the authorities vote it BadCompute for 30 days, and
	// more proofs would only cost them re-executions.
	provenFor = time.Hour
	// maxProven bounds the signers remembered so.
	maxProven = 1 << 12
	// maxCircuits bounds the circuits whose ticket counts are kept; when
	// full the counts are forgotten.
	maxCircuits = 1 << 14
)

// Errors of Accept.
var (
	// ErrBusy: the re-execution queue is full.
	ErrBusy = errors.New("verifier: queue full")
	// ErrCircuitLimit: the circuit submitted PerCircuit tickets already.
	ErrCircuitLimit = errors.New("verifier: too many tickets on this circuit")
	// ErrReplay: this commitment was accepted before.
	ErrReplay = errors.New("verifier: commitment already checked")
	// ErrSigner: the commitment's identity is no compute relay of that
	// model and range in the consensus.
	ErrSigner = errors.New("verifier: signer serves no such shard in the consensus")
	// ErrModel: the ticket is for a model this verifier does not hold.
	ErrModel = errors.New("verifier: model not served here")
	// ErrProven: a fraud proof against the signer was sent lately.
	ErrProven = errors.New("verifier: the signer was proved to cheat already")
	// ErrNoParties: a party ticket to a verifier that checks none.
	ErrNoParties = errors.New("verifier: party tickets not checked here")
)

// job is one queued ticket: anonymous (t) or a party's (pt).
type job struct {
	t  *verify.Ticket
	pt *verify.PartyTicket
}

// claim is what the cheap checks need of a ticket of either kind.
type claim struct {
	modelID     string
	identity    [32]byte
	first, last int
	signer      Signer
	verify      func() bool
	id          func() [32]byte
	start, cnt  int
	nonce       [32]byte
}

// Verifier takes and re-executes tickets.
type Verifier struct {
	cfg  Config
	log  *slog.Logger
	q    chan job
	stop context.CancelFunc
	ctx  context.Context
	done chan struct{}

	mu      sync.Mutex // guards seen, perCirc and proven
	seen    map[[32]byte]struct{}
	perCirc map[uint64]int
	proven  map[[32]byte]time.Time // signers a proof was sent against, and when
}

// New starts a verifier's worker; Close stops it.
func New(cfg Config) (*Verifier, error) {
	if cfg.ModelID == "" || cfg.Load == nil || cfg.Signer == nil || cfg.Prove == nil {
		return nil, errors.New("verifier: model id, loader, signer check and prover are required")
	}
	if cfg.PartySigner != nil && (cfg.LoadStage == nil || cfg.Layers <= 0) {
		return nil, errors.New("verifier: party tickets need a stage loader and the layer count")
	}
	if cfg.MaxTicket <= 0 {
		cfg.MaxTicket = defaultMaxTicket
	}
	cfg.MaxTicket = min(cfg.MaxTicket, verify.MaxTicketBytes)
	if cfg.Queue <= 0 {
		cfg.Queue = defaultQueue
	}
	if cfg.PerCircuit <= 0 {
		cfg.PerCircuit = defaultPerCircuit
	}
	v := &Verifier{cfg: cfg, log: cfg.Logger, q: make(chan job, cfg.Queue), done: make(chan struct{}),
		seen: map[[32]byte]struct{}{}, perCirc: map[uint64]int{}, proven: map[[32]byte]time.Time{}}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	v.ctx, v.stop = context.WithCancel(context.Background())
	go v.run()
	return v, nil
}

// Close stops the worker and waits for it.
func (v *Verifier) Close() {
	v.stop()
	<-v.done
}

// MaxTicket implements hop.TicketSink.
func (v *Verifier) MaxTicket() int { return v.cfg.MaxTicket }

// Accept implements hop.TicketSink: the cheap checks, then the queue.
func (v *Verifier) Accept(circuit uint64, b []byte) error {
	var j job
	var cl claim
	if verify.IsPartyTicket(b) {
		if v.cfg.PartySigner == nil {
			return ErrNoParties
		}
		pt, err := verify.DecodePartyTicket(b)
		if err != nil {
			return err
		}
		c := pt.Commitment
		j.pt = pt
		cl = claim{c.ModelID, c.Identity, c.First, c.Last, v.cfg.PartySigner, c.Verify, c.ID, c.Start, c.Count, c.Nonce}
	} else {
		t, err := verify.DecodeTicket(b)
		if err != nil {
			return err
		}
		c := t.Commitment
		j.t = t
		cl = claim{c.ModelID, c.Identity, c.First, c.Last, v.cfg.Signer, c.Verify, c.ID, c.Start, c.Count, c.Nonce}
	}
	return v.admit(circuit, j, &cl)
}

// admit runs the cheap checks of spec/11 §3.5 on a decoded ticket and
// queues it.
func (v *Verifier) admit(circuit uint64, j job, c *claim) error {
	if c.modelID != v.cfg.ModelID {
		return ErrModel
	}
	v.mu.Lock()
	if v.perCirc[circuit] >= v.cfg.PerCircuit {
		v.mu.Unlock()
		return ErrCircuitLimit
	}
	if len(v.perCirc) >= maxCircuits {
		clear(v.perCirc)
	}
	v.perCirc[circuit]++
	v.mu.Unlock()
	v.mu.Lock()
	at, proven := v.proven[c.identity]
	v.mu.Unlock()
	if proven && time.Since(at) < provenFor {
		return ErrProven
	}
	if !c.signer(c.identity, c.modelID, c.first, c.last) {
		return ErrSigner
	}
	if !c.verify() {
		return verify.ErrSignature
	}
	id := c.id()
	v.mu.Lock()
	if _, ok := v.seen[id]; ok {
		v.mu.Unlock()
		return ErrReplay
	}
	if len(v.seen) >= maxSeen {
		clear(v.seen)
	}
	v.seen[id] = struct{}{}
	v.mu.Unlock()
	select {
	case v.q <- j:
		v.log.Debug("ticket queued", "signer", hex.EncodeToString(c.identity[:8]), "nonce", hex.EncodeToString(c.nonce[:8]),
			"start", c.start, "count", c.cnt, "party", j.pt != nil)
		return nil
	default:
		v.mu.Lock()
		delete(v.seen, id)
		v.mu.Unlock()
		return ErrBusy
	}
}

func (v *Verifier) run() {
	defer close(v.done)
	for {
		select {
		case <-v.ctx.Done():
			return
		case j := <-v.q:
			var verdict verify.Verdict
			var err error
			if j.pt != nil {
				verdict, err = v.checkParty(j.pt)
			} else {
				verdict, err = v.check(j.t)
			}
			if v.cfg.Checked != nil {
				v.cfg.Checked(verdict, err)
			}
		}
	}
}

// check re-executes t: relay kernels first; a Fraud is confirmed on the
// portable path and then proved to the authorities.
func (v *Verifier) check(t *verify.Ticket) (verify.Verdict, error) {
	c := t.Commitment
	sh, done, err := v.cfg.Load(c.First, c.Last)
	if err != nil {
		return 0, fmt.Errorf("verifier: shard [%d,%d): %w", c.First, c.Last, err)
	}
	defer done()
	signer, nonce := hex.EncodeToString(c.Identity[:8]), hex.EncodeToString(c.Nonce[:8])
	var verdict verify.Verdict
	if v.cfg.Portable {
		restore := tensor.UsePortable()
		verdict, err = verify.Check(t, sh)
		restore()
	} else {
		verdict, err = verify.Check(t, sh)
	}
	if err != nil || verdict != verify.Fraud {
		v.log.Debug("ticket checked", "verdict", verdict.String(), "err", err, "signer", signer, "nonce", nonce,
			"portable", v.cfg.Portable)
		return verdict, err
	}
	if !v.cfg.Portable {
		restore := tensor.UsePortable()
		verdict, err = verify.Check(t, sh)
		restore()
		if err != nil || verdict != verify.Fraud {
			v.log.Error("relay kernels and the portable path disagree on a ticket", "verdict", verdict.String(), "err", err)
			return verdict, err
		}
	}
	v.log.Warn("fraud: sending the proof to the authorities", "model", c.ModelID, "first", c.First, "last", c.Last,
		"start", c.Start, "count", c.Count, "signer", signer, "nonce", nonce)
	return v.prove(c.Identity, t.Append(nil))
}

// prove sends a proof against identity and refuses its tickets for a while.
func (v *Verifier) prove(identity [32]byte, proof []byte) (verify.Verdict, error) {
	if err := v.cfg.Prove(v.ctx, proof); err != nil {
		return verify.Fraud, fmt.Errorf("verifier: proof: %w", err)
	}
	v.mu.Lock()
	if len(v.proven) >= maxProven {
		clear(v.proven)
	}
	v.proven[identity] = time.Now()
	v.mu.Unlock()
	return verify.Fraud, nil
}

// checkParty re-executes a party ticket's party side; a Fraud is proved to
// the authorities.
func (v *Verifier) checkParty(t *verify.PartyTicket) (verify.Verdict, error) {
	c := t.Commitment
	ps, done, err := v.cfg.LoadStage(c.First, c.Last)
	if err != nil {
		return 0, fmt.Errorf("verifier: stage [%d,%d): %w", c.First, c.Last, err)
	}
	verdict, err := verify.CheckParty(v.ctx, t, ps, v.cfg.Layers)
	done()
	signer, nonce := hex.EncodeToString(c.Identity[:8]), hex.EncodeToString(c.Nonce[:8])
	if err != nil || verdict != verify.Fraud {
		v.log.Debug("party ticket checked", "verdict", verdict.String(), "err", err, "signer", signer, "nonce", nonce, "role", c.Role.String())
		return verdict, err
	}
	v.log.Warn("fraud: a party's re-execution differs, sending the proof to the authorities", "model", c.ModelID,
		"first", c.First, "last", c.Last, "role", c.Role.String(), "step", c.Step, "signer", signer, "nonce", nonce)
	return v.prove(c.Identity, t.Append(nil))
}

// PostProof returns a Prove function that POSTs a proof to every authority
// at addrs (host:port) on directory.PathProof and succeeds when one of them
// judged it fraud. An authority answering 503 (busy with another proof) is
// asked again, at most tries times, a second apart.
func PostProof(addrs []string, path string, client *http.Client, tries int) func(context.Context, []byte) error {
	return func(ctx context.Context, proof []byte) error {
		var errs []error
		ok := false
		for _, a := range addrs {
			for try := 0; try < max(tries, 1); try++ {
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+a+path, bytes.NewReader(proof))
				if err != nil {
					return err
				}
				resp, err := client.Do(req)
				if err != nil {
					errs = append(errs, err)
					break
				}
				body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					ok = true
					break
				}
				if resp.StatusCode != http.StatusServiceUnavailable {
					errs = append(errs, fmt.Errorf("%s: %s: %s", a, resp.Status, strings.TrimSpace(string(body))))
					break
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(time.Second):
				}
			}
		}
		if ok {
			return nil
		}
		return errors.Join(errs...)
	}
}
