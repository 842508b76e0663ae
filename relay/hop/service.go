package hop

import (
	"context"
	"errors"
	"fmt"
	"github.com/unfed/unfed/compute/mpc"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/unfed/unfed/compute/model"
	"github.com/unfed/unfed/relay/cell"
)

// The relay side: a Service holds one session per circuit that carries
// compute traffic through this relay. Pipeline per message:
//
//	Deliver → observe → decode (client) or open+decode (edge) → session step
//	→ forward pass → emit: ACTIVATIONS forward (sealed) or LOGITS backward
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
	// ModelID is the catalog id of the model Shard belongs to; required.
	ModelID string
	// Shard is the layer range this relay runs for role compute; a relay
	// needs a Shard, a Party, or both.
	Shard *model.Shard
	// Party, when set, lets this relay serve as party A or B of an MPC pair.
	Party *PartyConfig
	// AllowPlain lets a client send token ids in the clear (embed=plain).
	// It is insecure and off by default.
	AllowPlain bool
	// ChunkRows caps the positions per ACTIVATIONS message (pipelining long
	// prompts); 0: as many as fit one message.
	ChunkRows int
	// Logger receives one line per session event; nil discards. Nothing that
	// depends on prompts, activations or keys is logged.
	Logger *slog.Logger
	// Observe, when set, sees every message this hop receives before it is
	// processed. It is a test and audit hook; it must not retain Data.
	Observe func(Observation)
	// MPCStepDone, when set, is called after each completed MPC party step
	// with its statistics (rounds, wall time, time waiting for the other
	// party): the relay's metrics hook. It must not block.
	MPCStepDone func(mpc.Role, mpc.Stats)
}

// Service is the compute protocol of one relay: it owns a session per
// circuit. Its methods are safe for concurrent use by many circuits.
type Service struct {
	cfg Config
	log *slog.Logger

	// prepared is the party's fixed-point weights and tables, built once and
	// shared by every party session; nil without a Party.
	prepared *mpc.Prepared

	// stepping counts party sessions inside a step right now: a party
	// evaluates a PREP ahead only when no other session is computing, since
	// evaluating ahead is more work in total and only pays when the relay
	// would otherwise wait.
	stepping atomic.Int64

	mu      sync.Mutex // guards the fields below
	closed  bool
	circs   map[uint64]*session
	parties int // open party sessions
}

// NewService returns a Service for cfg.
func NewService(cfg Config) (*Service, error) {
	if cfg.ModelID == "" || len(cfg.ModelID) > MaxModelID {
		return nil, fmt.Errorf("hop: model id of %d bytes", len(cfg.ModelID))
	}
	if cfg.Shard == nil && cfg.Party == nil {
		return nil, errors.New("hop: neither a shard nor an MPC party")
	}
	if p := cfg.Party; p != nil {
		if p.Role != RoleMPCA && p.Role != RoleMPCB {
			return nil, fmt.Errorf("hop: party role %v", p.Role)
		}
		if p.Weights == nil {
			return nil, errors.New("hop: party without weights")
		}
	}
	if cfg.ChunkRows < 0 {
		return nil, fmt.Errorf("hop: chunk rows %d", cfg.ChunkRows)
	}
	s := &Service{cfg: cfg, log: cfg.Logger, circs: make(map[uint64]*session)}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if p := cfg.Party; p != nil {
		var err error
		if s.prepared, err = mpc.Prepare(p.Weights, p.Options.Params); err != nil {
			return nil, fmt.Errorf("hop: party weights: %w", err)
		}
		// Keep no reference to the float weights: the prepared form is all
		// the sessions use, and the caller may let the rest go.
		pc := *p
		pc.Weights = nil
		s.cfg.Party = &pc
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

func (s *Service) takeParty() bool {
	limit := s.cfg.Party.MaxSessions
	if limit <= 0 {
		limit = defaultPartySessions
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.parties >= limit {
		return false
	}
	s.parties++
	return true
}

func (s *Service) releaseParty() {
	s.mu.Lock()
	s.parties--
	s.mu.Unlock()
}

func (s *Service) observe(c Circuit, k ObsKind, b []byte) {
	if s.cfg.Observe != nil {
		s.cfg.Observe(Observation{Circuit: c.ID(), Kind: k, Data: b})
	}
}

// codedError is an error the hop reports to the client with a code.
type codedError struct {
	code   Code
	reason string
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
