package directory

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the authority's Prometheus metrics. With a nil registry they
// are created but not registered, so callers never check for nil.
type metrics struct {
	descriptors       *prometheus.CounterVec
	votes             prometheus.Counter
	published         prometheus.Counter
	consensusFailures prometheus.Counter
	probeFailures     prometheus.Counter
	measured          prometheus.Counter
	unmeasured        prometheus.Counter
	measureBytes      prometheus.Counter
	signatures        prometheus.Gauge
	relays            prometheus.Gauge
	uploadsRefused    *prometheus.CounterVec
}

func newMetrics(reg *prometheus.Registry) (*metrics, error) {
	m := &metrics{
		descriptors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "unfed", Subsystem: "dirauth",
			Name: "descriptors_received_total", Help: "Relay descriptor uploads, by result (accepted or rejected)."}, []string{"result"}),
		votes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "unfed", Subsystem: "dirauth",
			Name: "votes_accepted_total", Help: "Votes accepted from other authorities."}),
		published: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "unfed", Subsystem: "dirauth",
			Name: "consensus_published_total", Help: "Consensus documents published (re-publications with more signatures included)."}),
		consensusFailures: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "unfed", Subsystem: "dirauth",
			Name: "consensus_failures_total", Help: "Voting periods that ended without a publishable consensus."}),
		probeFailures: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "unfed", Subsystem: "dirauth",
			Name: "probe_failures_total", Help: "Relay reachability probes that failed."}),
		measureBytes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "unfed", Subsystem: "dirauth",
			Name: "measure_bytes_total", Help: "Bytes sent and received measuring relays, link handshakes included."}),
		signatures: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "unfed", Subsystem: "dirauth",
			Name: "consensus_signatures", Help: "Authorities that signed the consensus last published."}),
		relays: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "unfed", Subsystem: "dirauth",
			Name: "relays_known", Help: "Relay descriptors held."}),
		uploadsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "unfed", Subsystem: "dirauth",
			Name: "uploads_refused_total", Help: "Uploads refused before their body was read, by reason."}, []string{"reason"}),
	}
	measurements := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "unfed", Subsystem: "dirauth",
		Name: "measurements_total", Help: "Measurements of reachable relays, by result (measured, or unmeasured when the exchange failed)."}, []string{"result"})
	m.measured, m.unmeasured = measurements.WithLabelValues("measured"), measurements.WithLabelValues("unmeasured")
	m.descriptors.WithLabelValues("accepted")
	m.descriptors.WithLabelValues("rejected")
	if reg != nil {
		for _, c := range []prometheus.Collector{m.descriptors, m.votes, m.published, m.consensusFailures, m.probeFailures, measurements, m.measureBytes,
			m.signatures, m.relays, m.uploadsRefused} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("directory: registering metrics: %w", err)
			}
		}
	}
	return m, nil
}
