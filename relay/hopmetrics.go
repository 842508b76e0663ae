package relay

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/unfed/unfed/compute/mpc"
	"github.com/unfed/unfed/relay/hop"
)

// hopObserver counts what the compute hop service receives, by message
// type: unfed_hop_received_messages_total{type} and
// unfed_hop_received_bytes_total{type}. These are the evidence behind the
// "what each relay saw" report of `unfed testnet demo` and the privacy
// audit: a relay that received no "tokens" message never saw a token id, one
// that received no "activations" never saw a hidden state in the clear.
// Only the type byte is read; contents are never inspected or logged.
func hopObserver(reg prometheus.Registerer) (func(hop.Observation), error) {
	msgs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "unfed", Subsystem: "hop", Name: "received_messages_total",
		Help: "Compute protocol messages received by this relay, by type.",
	}, []string{"type"})
	bytes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "unfed", Subsystem: "hop", Name: "received_bytes_total",
		Help: "Bytes of compute protocol messages received by this relay, by type.",
	}, []string{"type"})
	for _, c := range []prometheus.Collector{msgs, bytes} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return func(o hop.Observation) {
		t := observedType(o)
		if t == "" {
			return
		}
		msgs.WithLabelValues(t).Inc()
		bytes.WithLabelValues(t).Add(float64(len(o.Data)))
	}, nil
}

// observedType names an observed message by its type byte (spec/03-compute.md
// §3.1 and §4.1, spec/10-confidential.md §3.4–§3.6). Sealed edge envelopes
// are counted once opened.
func observedType(o hop.Observation) string {
	if len(o.Data) == 0 {
		return ""
	}
	switch o.Kind {
	case hop.ObsClient:
		switch o.Data[0] {
		case 0x01:
			return "setup"
		case 0x02:
			return "tokens"
		case 0x04:
			return "truncate"
		case 0x05:
			return "teardown"
		case 0x06:
			return "deal"
		case 0x07:
			return "mpc_input"
		}
		return "other"
	case hop.ObsEdgePlain:
		switch o.Data[0] {
		case 0x01:
			return "activations"
		case 0x03:
			return "mpc_peer"
		case 0x04:
			return "mpc_prep"
		case 0x05:
			return "mpc_reshare"
		}
		return "other"
	}
	return ""
}

// mpcStepMetrics records each step of a confidential stage's party:
// unfed_mpc_step_seconds{role} (wall time of the stage's layers on one
// position, from the step's start to its output share) and
// unfed_mpc_peer_wait_seconds{role} (the part spent waiting for the other
// party's openings). A high wait share points at the link to the other
// party or at a slower partner, not at this relay.
func mpcStepMetrics(reg prometheus.Registerer) (func(mpc.Role, mpc.Stats), error) {
	buckets := prometheus.ExponentialBuckets(0.001, 2, 14) // 1 ms .. 8 s
	step := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "unfed", Subsystem: "mpc", Name: "step_seconds", Buckets: buckets,
		Help: "Wall time of one confidential stage step (the stage's layers for one position), by party role.",
	}, []string{"role"})
	wait := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "unfed", Subsystem: "mpc", Name: "peer_wait_seconds", Buckets: buckets,
		Help: "Time of one MPC party step spent waiting for the other party, by party role.",
	}, []string{"role"})
	for _, c := range []prometheus.Collector{step, wait} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return func(r mpc.Role, st mpc.Stats) {
		role := r.String()
		step.WithLabelValues(role).Observe(st.Time.Seconds())
		wait.WithLabelValues(role).Observe(st.PeerWait.Seconds())
	}, nil
}

// dealerMetrics counts what a dealer deals:
// unfed_mpc_dealt_prep_bytes_total, the bytes of every PREP it sent to
// either party (before fragmenting and sealing). It is the upload a dealer
// carries instead of the client.
func dealerMetrics(reg prometheus.Registerer) (func(int), error) {
	c := prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "unfed", Subsystem: "mpc", Name: "dealt_prep_bytes_total",
		Help: "Bytes of PREP messages this dealer sent to the parties of its stages.",
	})
	if err := reg.Register(c); err != nil {
		return nil, err
	}
	return func(n int) { c.Add(float64(n)) }, nil
}

// computeMetrics records each forward pass of a compute relay's shard:
// unfed_hop_compute_seconds{layers, phase}, the wall time of the shard's
// layers (layers "FIRST-LAST", LAST exclusive) over one batch of positions,
// phase "prefill" for more than one position and "decode" for one.
func computeMetrics(reg prometheus.Registerer, first, last int) (func(int, time.Duration), error) {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "unfed", Subsystem: "hop", Name: "compute_seconds",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 17), // 0.1 ms .. 6.5 s
		Help:    "Wall time of one forward pass of this relay's shard, by layer range and phase (prefill: several positions; decode: one).",
	}, []string{"layers", "phase"})
	if err := reg.Register(h); err != nil {
		return nil, err
	}
	layers := fmt.Sprintf("%d-%d", first, last)
	prefill, decode := h.WithLabelValues(layers, "prefill"), h.WithLabelValues(layers, "decode")
	return func(positions int, d time.Duration) {
		if positions > 1 {
			prefill.Observe(d.Seconds())
		} else {
			decode.Observe(d.Seconds())
		}
	}, nil
}
