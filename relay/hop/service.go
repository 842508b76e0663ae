package hop

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/unfed/unfed/compute/model"
	"github.com/unfed/unfed/compute/mpc"
	"github.com/unfed/unfed/relay/cell"
	"github.com/unfed/unfed/relay/internal/netyield"
	"github.com/unfed/unfed/relay/keys"
)

// The relay side: a Service holds one session per circuit that carries
// compute traffic through this relay. Pipeline per message:
//
//	Deliver → observe → decode (client) or open+decode (edge) → session step
//	→ compute: forward pass → emit: ACTIVATIONS forward (sealed) or LOGITS backward
//	→ party:   queue for the session's worker (party.go)
//	→ dealer:  deal → MPC_PREP to both parties (dealer.go)
//
// Service.mu guards the session table only; a session is touched by one
// Deliver at a time (the circuit switch serialises a circuit's messages), so
// the session itself needs no lock, except its close, which Service.Close may
// race with and which is idempotent.

// Circuit is one circuit as a compute hop sees it: how it answers. The relay
// circuit switch's *circuit.Hop implements it. Neither send retains msg.
type Circuit interface {
	// ID names the circuit within this relay.
	ID() uint64
	// Send sends msg backward to the client as one relay DATA message.
	Send(ctx context.Context, msg []byte) error
	// SendEdge sends msg, an edge envelope, to the hop `hops` positions
	// further from the client (Forward), or to the previous hop (Backward,
	// hops 1).
	SendEdge(ctx context.Context, dir cell.Direction, hops int, msg []byte) error
}

// Inbound is one message addressed to this hop, as the circuit switch
// delivers it (relay/circuit.Message, field for field).
type Inbound struct {
	// Edge is false for a relay DATA message from the client, true for an
	// edge message from another hop.
	Edge bool
	// Dir, for an edge message: Forward came from an earlier hop, Backward
	// from the next one.
	Dir cell.Direction
	// Distance, for an edge message, is how many hops away the sender is.
	Distance int
	// Data is the message; the Service owns it (edge messages are decrypted
	// in place).
	Data []byte
}

// ObsKind says what an Observation holds.
type ObsKind uint8

// Observation kinds.
const (
	// ObsClient: a relay DATA message from the client, after the switch
	// removed the onion layers.
	ObsClient ObsKind = iota + 1
	// ObsEdge: an edge envelope as it arrived.
	ObsEdge
	// ObsEdgePlain: the edge message inside an envelope this hop could open.
	ObsEdgePlain
)

// CaptureDir says where a captured message came from or went to (the dir
// byte of a capture record, spec/10 §8).
type CaptureDir uint8

// Capture directions.
const (
	CaptureFromClient CaptureDir = 0 // a compute message received from the client
	CaptureFromEdge   CaptureDir = 1 // an edge message received from another hop, opened
	CaptureToClient   CaptureDir = 2 // a compute message sent to the client
	CaptureToEdge     CaptureDir = 3 // an edge message sent to another hop, before sealing
)

// Observation is one thing a hop received, for test hooks and the privacy
// audit. Data is only valid during the call.
type Observation struct {
	Circuit uint64
	Kind    ObsKind
	Data    []byte
}

// Config configures a Service. The zero value of each optional field means its
// default.
type Config struct {
	// ModelID is the catalog id of the model served; required.
	ModelID string
	// Shard is the layer range this relay runs for role compute. A relay
	// needs at least one of Shard, Party and Dealer.
	Shard *model.Shard
	// Party, when set, lets this relay serve as party A or B of one
	// confidential stage.
	Party *PartyConfig
	// Dealer, when set, lets this relay deal any confidential stage of the
	// model.
	Dealer *DealerConfig
	// AllowPlain lets a client send token ids in the clear (TOKENS, the
	// input of an anonymous circuit's first hop). Off by default.
	AllowPlain bool
	// Bundle, when set, returns the client bundle of the model
	// (compute/model.WriteBundle), which the hop serves to BUNDLE_GET
	// (spec §3.13); nil answers BUNDLE_GET unsupported. It may build the
	// bundle on first use and must be safe for concurrent use.
	Bundle func() ([]byte, error)
	// Identity, when set, signs the compute sessions' commitments
	// (spec/11 §2); without it a COMMIT_ON is answered unsupported.
	Identity *keys.Identity
	// ChunkRows caps the positions per ACTIVATIONS message (pipelining long
	// prompts); 0: as many as fit one message.
	ChunkRows int
	// Logger receives one line per session event; nil discards. Nothing that
	// depends on prompts, activations or keys is logged.
	Logger *slog.Logger
	// Observe, when set, sees every message this hop receives before it is
	// processed. It is a test and audit hook; it must not retain Data.
	Observe func(Observation)
	// Capture, when set, is called with every compute message this hop
	// receives from or sends to the client and every edge message it opens
	// or seals, in plaintext (spec/10 §8). It is the relay's audit_capture
	// hook, for testing only; it is called from many goroutines, must not
	// retain msg and must not block for long.
	Capture func(dir CaptureDir, msg []byte)
	// MPCStepDone, when set, is called after each completed party step
	// with its statistics (rounds, wall time, time waiting for the other
	// party): the relay's metrics hook. It must not block.
	MPCStepDone func(mpc.Role, mpc.Stats)
	// PrepDealt, when set, is called with the size of every PREP a dealer
	// session deals (to either party). It must not block.
	PrepDealt func(bytes int)
	// ComputeDone, when set, is called after each forward pass of the
	// Shard with the positions it ran and its wall time: the relay's
	// compute-time metrics hook. It must not block.
	ComputeDone func(positions int, d time.Duration)
	// Tickets, when set, takes the tickets clients submit (role verifier,
	// spec/11-verification.md §3.5).
	Tickets TicketSink
	// Payments, when set, redeems the credits clients pay with (PAY,
	// pay.go) and says whether work must be paid for; nil: PAY is
	// answered unsupported and work is free.
	Payments Payments
}

// TicketSink takes the whole tickets a verifier relay receives over its
// circuits (spec/11 §3.5).
type TicketSink interface {
	// MaxTicket is the longest ticket accepted, in bytes.
	MaxTicket() int
	// Accept takes one ticket received on circuit; an error refuses it
	// (the client gets an ERROR with the error's text).
	Accept(circuit uint64, ticket []byte) error
}

// Service is the compute protocol of one relay: it owns a session per
// circuit. Its methods are safe for concurrent use by many circuits.
type Service struct {
	cfg Config
	log *slog.Logger

	// dealerCfg is the model's shape for dealer sessions; zero without a
	// Dealer.
	dealerCfg mpc.Config
	// netYield lets dealings step aside for the network (dealer.go).
	netYield netyield.Yielder

	mu      sync.Mutex // guards the fields below
	closed  bool
	circs   map[uint64]*session
	parties int // open party sessions
	dealers int // open dealer sessions
	spares  []spareBufs
}

// spareBufs are a closed compute session's message buffers, kept for the
// next session: a relay opens a session per request, and buffers new each
// time are fresh pages, each a page fault (12-18 us on the project's VMs)
// the first time it is written (docs/PERFORMANCE.md, sixth look).
type spareBufs struct {
	msg, env, kept []byte
	rows, out      []float32 // decoded input rows, a pass's output rows
}

// maxSpareBufs bounds the closed sessions' buffers a Service keeps, and
// maxSpareBuf the capacity of each kept.
const (
	maxSpareBufs = 2
	maxSpareBuf  = 4 << 20
)

// takeSpare returns kept buffers (empty, with capacity) or none.
func (s *Service) takeSpare() spareBufs {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := len(s.spares)
	if k == 0 {
		return spareBufs{}
	}
	b := s.spares[k-1]
	s.spares[k-1] = spareBufs{}
	s.spares = s.spares[:k-1]
	return b
}

func (s *Service) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// putSpare keeps a closed session's buffers, if there is room.
func (s *Service) putSpare(b spareBufs) {
	small := func(x []byte) []byte {
		if cap(x) > maxSpareBuf {
			return nil
		}
		return x[:0]
	}
	smallRows := func(x []float32) []float32 {
		if 4*cap(x) > maxSpareBuf {
			return nil
		}
		return x[:0]
	}
	b = spareBufs{msg: small(b.msg), env: small(b.env), kept: small(b.kept), rows: smallRows(b.rows), out: smallRows(b.out)}
	if b.msg == nil && b.env == nil && b.kept == nil && b.rows == nil && b.out == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed && len(s.spares) < maxSpareBufs {
		s.spares = append(s.spares, b)
	}
}

// NewService returns a Service for cfg.
func NewService(cfg Config) (*Service, error) {
	if cfg.ModelID == "" || len(cfg.ModelID) > MaxModelID {
		return nil, fmt.Errorf("hop: model id of %d bytes", len(cfg.ModelID))
	}
	if cfg.Shard == nil && cfg.Party == nil && cfg.Dealer == nil && cfg.Tickets == nil {
		return nil, errors.New("hop: neither a shard, a party, a dealer nor a verifier")
	}
	if cfg.ChunkRows < 0 {
		return nil, fmt.Errorf("hop: chunk rows %d", cfg.ChunkRows)
	}
	s := &Service{cfg: cfg, log: cfg.Logger, circs: make(map[uint64]*session)}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if p := cfg.Party; p != nil {
		if err := p.check(); err != nil {
			return nil, err
		}
	}
	if d := cfg.Dealer; d != nil {
		mc, err := d.check()
		if err != nil {
			return nil, err
		}
		s.dealerCfg = mc
	}
	return s, nil
}

// Deliver processes one message of circuit c. Messages of one circuit must be
// delivered one at a time, in arrival order; Deliver may block for a forward
// pass and for send credit.
func (s *Service) Deliver(c Circuit, m Inbound) {
	ss := s.session(c)
	if ss == nil {
		return
	}
	ss.handle(m)
}

// Closed ends circuit c's session: its KV cache is freed. Call it once the
// circuit is destroyed, after its last Deliver.
func (s *Service) Closed(c Circuit) {
	s.mu.Lock()
	ss := s.circs[c.ID()]
	delete(s.circs, c.ID())
	s.mu.Unlock()
	if ss != nil {
		ss.close()
	}
}

// Close ends every session and refuses later circuits.
func (s *Service) Close() {
	s.mu.Lock()
	s.closed = true
	circs := s.circs
	s.circs = map[uint64]*session{}
	s.mu.Unlock()
	for _, ss := range circs {
		ss.close()
	}
	s.netYield.Close()
}

// Sessions returns the number of circuits with compute state on this relay.
func (s *Service) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.circs)
}

func (s *Service) session(c Circuit) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	ss := s.circs[c.ID()]
	if ss == nil {
		ss = newSession(s, c)
		s.circs[c.ID()] = ss
	}
	return ss
}

// takeSlot takes a party (dealer false) or dealer session slot, at most
// limit (0: 16) open at once.
func (s *Service) takeSlot(dealer bool, limit int) bool {
	if limit <= 0 {
		limit = defaultMPCSessions
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := &s.parties
	if dealer {
		n = &s.dealers
	}
	if *n >= limit {
		return false
	}
	*n++
	return true
}

func (s *Service) releaseSlot(dealer bool) {
	s.mu.Lock()
	if dealer {
		s.dealers--
	} else {
		s.parties--
	}
	s.mu.Unlock()
}

// defaultMPCSessions bounds party and dealer sessions when the
// configuration does not.
const defaultMPCSessions = 16

func (s *Service) observe(c Circuit, k ObsKind, b []byte) {
	if s.cfg.Observe != nil {
		s.cfg.Observe(Observation{Circuit: c.ID(), Kind: k, Data: b})
	}
}

// capture hands msg to the audit capture hook, if any. Empty messages are
// not recorded (a capture record holds at least the type byte).
func (s *Service) capture(dir CaptureDir, msg []byte) {
	if s.cfg.Capture != nil && len(msg) > 0 {
		s.cfg.Capture(dir, msg)
	}
}

// codedError is an error the hop reports to the client with a code.
type codedError struct {
	code   Code
	reason string
	// peerEnded: the other party of the stage ended first (PeerAbort), so
	// this one need not tell it.
	peerEnded bool
}

func (e *codedError) Error() string { return "hop: " + e.code.String() + ": " + e.reason }

func coded(c Code, format string, args ...any) error {
	return &codedError{code: c, reason: fmt.Sprintf(format, args...)}
}

// errSend: the circuit would not take a message; the session ends quietly.
var errSend = errors.New("hop: send failed")

// modelError maps an engine error to a coded one. Only typed limits are
// reported as such; anything else is internal and described no further.
func modelError(err error) error {
	switch {
	case errors.Is(err, model.ErrTooManySessions), errors.Is(err, model.ErrOutOfMemoryBudget):
		return coded(CodeCapacity, "no capacity")
	case errors.Is(err, model.ErrContextTooLong):
		return coded(CodeContextTooLong, "context limit reached")
	}
	return coded(CodeInternal, "forward pass failed")
}
