package circuit

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Reasons a cell is dropped (label "reason" of unfed_circuit_cells_dropped_total).
const (
	dropMalformed     = "malformed"
	dropUnknownCirc   = "unknown_circuit"
	dropUnknownCmd    = "unknown_command"
	dropUnknownKind   = "unknown_kind"
	dropBadID         = "bad_circuit_id"
	dropNoHandler     = "no_handler"
	dropEcho          = "padding_echo"
	dropEdge          = "bad_edge"
	dropLimit         = "limit"
	dropUnexpected    = "unexpected"
	dropClientLinkEdg = "edge_on_client_link"
	dropHandshake     = "handshake"
	dropAuth          = "auth"
	dropGossip        = "bad_gossip"
)

type metrics struct {
	dropped   *prometheus.CounterVec
	destroyed *prometheus.CounterVec
	created   prometheus.Counter
	circuits  prometheus.Gauge
}

func newMetrics(r prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "unfed", Subsystem: "circuit",
			Name: "cells_dropped_total", Help: "Cells dropped without effect, by reason."}, []string{"reason"}),
		destroyed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "unfed", Subsystem: "circuit",
			Name: "destroyed_total", Help: "Circuits destroyed, by reason."}, []string{"reason"}),
		created: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "unfed", Subsystem: "circuit",
			Name: "created_total", Help: "Circuits created (CREATE answered)."}),
		circuits: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "unfed", Subsystem: "circuit",
			Name: "circuits", Help: "Circuits crossing this relay."}),
	}
	if r == nil {
		return m, nil
	}
	var err error
	if m.dropped, err = register(r, m.dropped); err != nil {
		return nil, err
	}
	if m.destroyed, err = register(r, m.destroyed); err != nil {
		return nil, err
	}
	if m.created, err = register(r, m.created); err != nil {
		return nil, err
	}
	if m.circuits, err = register(r, m.circuits); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *metrics) drop(reason string) { m.dropped.WithLabelValues(reason).Inc() }

// register registers c, or returns the collector already registered under its
// name, so several switches in one process share their metrics.
func register[T prometheus.Collector](r prometheus.Registerer, c T) (T, error) {
	if err := r.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if old, ok := are.ExistingCollector.(T); ok {
				return old, nil
			}
		}
		return c, fmt.Errorf("circuit: registering metrics: %w", err)
	}
	return c, nil
}
