package hop

import (
	"github.com/unfed/unfed/relay/circuit"
)

// CircuitHandler returns s as the relay circuit switch's Handler
// (circuit.Config.Handler): the switch hands it each circuit's messages one
// at a time, and *circuit.Hop is the Circuit the session answers on.
func (s *Service) CircuitHandler() circuit.Handler { return circuitHandler{s} }

type circuitHandler struct{ s *Service }

func (h circuitHandler) Handle(hp *circuit.Hop, m circuit.Message) {
	h.s.Deliver(hp, Inbound{Edge: m.Edge, Dir: m.Dir, Distance: m.Distance, Data: m.Data})
}

func (h circuitHandler) Closed(hp *circuit.Hop) { h.s.Closed(hp) }
