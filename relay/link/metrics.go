package link

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the link layer's Prometheus counters. A nil *Metrics counts
// nothing, so tests and tools may leave it out.
type Metrics struct {
	handshakes *prometheus.CounterVec
	badFrames  *prometheus.CounterVec
	refused    *prometheus.CounterVec
	rekeys     prometheus.Counter
	open       prometheus.Gauge
	received   prometheus.Counter
	sent       prometheus.Counter
}

// NewMetrics creates the link metrics and registers them on reg:
//
//	unfed_link_handshakes_total{side,result}  completed and failed handshakes
//	unfed_link_bad_frames_total{reason}       frames that closed a link
//	unfed_link_refused_total{reason}          connections refused before a handshake
//	unfed_link_rekeys_total                   sending-key rekeys
//	unfed_link_open                           links currently open
//	unfed_link_received_bytes_total           bytes received on links (wire bytes)
//	unfed_link_sent_bytes_total               bytes sent on links (wire bytes)
func NewMetrics(reg *prometheus.Registry) (*Metrics, error) {
	m := &Metrics{
		handshakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "unfed", Subsystem: "link", Name: "handshakes_total",
			Help: "Link handshakes by side (dial, accept) and result.",
		}, []string{"side", "result"}),
		badFrames: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "unfed", Subsystem: "link", Name: "bad_frames_total",
			Help: "Received frames that failed to decode and closed their link, by reason.",
		}, []string{"reason"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "unfed", Subsystem: "link", Name: "refused_total",
			Help: "Incoming connections refused before the handshake, by reason.",
		}, []string{"reason"}),
		rekeys: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "unfed", Subsystem: "link", Name: "rekeys_total",
			Help: "Sending-key rekeys performed.",
		}),
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "unfed", Subsystem: "link", Name: "open",
			Help: "Links currently open.",
		}),
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "unfed", Subsystem: "link", Name: "received_bytes_total",
			Help: "Bytes received on links, as framed on the wire.",
		}),
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "unfed", Subsystem: "link", Name: "sent_bytes_total",
			Help: "Bytes sent on links, as framed on the wire.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.handshakes, m.badFrames, m.refused, m.rekeys, m.open, m.received, m.sent} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("link: register metrics: %w", err)
			}
		}
	}
	return m, nil
}

func (m *Metrics) handshake(side, result string) {
	if m != nil {
		m.handshakes.WithLabelValues(side, result).Inc()
	}
}

func (m *Metrics) badFrame(reason string) {
	if m != nil {
		m.badFrames.WithLabelValues(reason).Inc()
	}
}

func (m *Metrics) refuse(reason string) {
	if m != nil {
		m.refused.WithLabelValues(reason).Inc()
	}
}

func (m *Metrics) rekey() {
	if m != nil {
		m.rekeys.Inc()
	}
}

func (m *Metrics) openDelta(d float64) {
	if m != nil {
		m.open.Add(d)
	}
}

func (m *Metrics) bytesIn(n int) {
	if m != nil {
		m.received.Add(float64(n))
	}
}

func (m *Metrics) bytesOut(n int) {
	if m != nil {
		m.sent.Add(float64(n))
	}
}
