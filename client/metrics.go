package client

// Client metrics, on the metrics listener's /metrics:
//
//   - unfed_client_requests_total{mode,outcome}: generations by outcome
//     (ok, canceled, unavailable, error);
//   - unfed_client_request_duration_seconds{mode}: a generation's wall time,
//     admission wait included;
//   - unfed_client_prompt_tokens_total{mode},
//     unfed_client_generated_tokens_total{mode};
//   - unfed_client_time_to_first_token_seconds{mode}: from the request to the
//     first token handed to the API;
//   - unfed_client_token_interval_seconds{mode}: between consecutive tokens;
//   - unfed_client_circuit_builds_total{mode,when}: circuits built, on demand
//     or ahead of need (spares);
//   - unfed_client_circuit_failures_total{stage,reason}: failed attempts of a
//     generation (stage "build" while building or setting up a circuit, "use"
//     while generating over it) and failed spare builds (stage "build"), by a
//     reason from a fixed set: busy, no_path, no_consensus, capacity,
//     unreachable, guard, relay, timeout, unattributed;
//   - unfed_client_consensus_valid_after_seconds: the valid-after time (Unix
//     seconds) of the consensus the client uses, 0 without one;
//   - unfed_client_consensus_running_relays: how many relays that consensus
//     lists Running.
//
// Labels carry no model id, relay, address or content. A nil *clientMetrics
// records nothing, so a backend built without a registry works.

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/unfed/unfed/client/openai"
	"github.com/unfed/unfed/directory"
)

type clientMetrics struct {
	requests       *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	promptTokens   *prometheus.CounterVec
	genTokens      *prometheus.CounterVec
	ttft           *prometheus.HistogramVec
	tokenInterval  *prometheus.HistogramVec
	builds         *prometheus.CounterVec
	circuitFailure *prometheus.CounterVec
}

// failureReasons is the fixed set of circuit failure reasons.
var failureReasons = []string{"busy", "no_path", "no_consensus", "capacity", "unreachable", "guard", "relay", "timeout", "unattributed"}

func newClientMetrics(reg prometheus.Registerer) (*clientMetrics, error) {
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: "unfed", Subsystem: "client", Name: name, Help: help}
	}
	hist := func(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
		o := opts(name, help)
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: o.Namespace, Subsystem: o.Subsystem,
			Name: o.Name, Help: o.Help, Buckets: buckets}, labels)
	}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts(opts(name, help)), labels)
	}
	slow := prometheus.ExponentialBuckets(0.01, 2, 14)  // 10 ms .. 82 s
	fast := prometheus.ExponentialBuckets(0.001, 2, 16) // 1 ms .. 33 s
	m := &clientMetrics{
		requests:       counter("requests_total", "Generations by circuit mode and outcome (ok, canceled, unavailable, error).", "mode", "outcome"),
		duration:       hist("request_duration_seconds", "Wall time of a generation, admission wait included, by circuit mode.", slow, "mode"),
		promptTokens:   counter("prompt_tokens_total", "Prompt tokens of generations, by circuit mode.", "mode"),
		genTokens:      counter("generated_tokens_total", "Tokens generated, by circuit mode.", "mode"),
		ttft:           hist("time_to_first_token_seconds", "Time from a request to its first generated token, by circuit mode.", slow, "mode"),
		tokenInterval:  hist("token_interval_seconds", "Time between consecutive generated tokens of a request, by circuit mode.", fast, "mode"),
		builds:         counter("circuit_builds_total", "Circuits built, by circuit mode and when (on_demand, ahead).", "mode", "when"),
		circuitFailure: counter("circuit_failures_total", "Failed circuit attempts by stage (build, use) and reason.", "stage", "reason"),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.promptTokens, m.genTokens, m.ttft, m.tokenInterval, m.builds, m.circuitFailure} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, mode := range []Mode{ModeConfidential, ModeAnonymous} {
		for _, o := range []string{"ok", "canceled", "unavailable", "error"} {
			m.requests.WithLabelValues(string(mode), o)
		}
	}
	for _, stage := range []string{"build", "use"} {
		for _, r := range failureReasons {
			m.circuitFailure.WithLabelValues(stage, r)
		}
	}
	return m, nil
}

// request times one generation and its tokens; done records its outcome.
type requestTimer struct {
	m     *clientMetrics
	mode  string
	start time.Time
	last  time.Time
	n     int
}

func (m *clientMetrics) startRequest(mode Mode) *requestTimer {
	now := time.Now()
	return &requestTimer{m: m, mode: string(mode), start: now, last: now}
}

// token records a token handed to the API.
func (r *requestTimer) token() {
	if r.m == nil {
		return
	}
	now := time.Now()
	if r.n == 0 {
		r.m.ttft.WithLabelValues(r.mode).Observe(now.Sub(r.start).Seconds())
	} else {
		r.m.tokenInterval.WithLabelValues(r.mode).Observe(now.Sub(r.last).Seconds())
	}
	r.last = now
	r.n++
}

func (r *requestTimer) done(u openai.Usage, err error) {
	if r.m == nil {
		return
	}
	r.m.requests.WithLabelValues(r.mode, requestOutcome(err)).Inc()
	r.m.duration.WithLabelValues(r.mode).Observe(time.Since(r.start).Seconds())
	r.m.promptTokens.WithLabelValues(r.mode).Add(float64(u.PromptTokens))
	r.m.genTokens.WithLabelValues(r.mode).Add(float64(u.CompletionTokens))
}

func requestOutcome(err error) string {
	var ue *openai.UnavailableError
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "canceled"
	case errors.As(err, &ue):
		return "unavailable"
	}
	return "error"
}

func (m *clientMetrics) built(mode Mode, ahead bool) {
	if m == nil {
		return
	}
	when := "on_demand"
	if ahead {
		when = "ahead"
	}
	m.builds.WithLabelValues(string(mode), when).Inc()
}

func (m *clientMetrics) circuitFailed(stage string, err error, p *Path) {
	if m == nil {
		return
	}
	m.circuitFailure.WithLabelValues(stage, failureReason(err, p)).Inc()
}

// failureReason names why a circuit attempt failed, from failureReasons.
func failureReason(err error, p *Path) string {
	var busy *busyError
	switch {
	case errors.As(err, &busy):
		return "busy"
	case errors.Is(err, ErrNoPath):
		return "no_path"
	case errors.Is(err, directory.ErrNoConsensus), errors.Is(err, directory.ErrExpired):
		return "no_consensus"
	}
	f := classify(err, p)
	switch {
	case f.capacity:
		return "capacity"
	case f.unreachable:
		return "unreachable"
	case f.guard != nil:
		return "guard"
	case len(f.relays) > 0:
		return "relay"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	}
	return "unattributed"
}

// registerConsensusGauges registers the gauges that describe the consensus
// current returns, read at each scrape: an operator (or a test) sees which
// consensus the client uses and how many relays it can choose from.
func registerConsensusGauges(reg prometheus.Registerer, current func() (*directory.Consensus, error)) error {
	gauge := func(name, help string, f func(c *directory.Consensus) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "unfed", Subsystem: "client", Name: name, Help: help},
			func() float64 {
				c, err := current()
				if err != nil || c == nil {
					return 0
				}
				return f(c)
			})
	}
	for _, g := range []prometheus.Collector{
		gauge("consensus_valid_after_seconds", "Valid-after time (Unix seconds) of the consensus in use; 0 without one.",
			func(c *directory.Consensus) float64 { return float64(c.ValidAfter.Unix()) }),
		gauge("consensus_running_relays", "Relays the consensus in use lists Running.",
			func(c *directory.Consensus) float64 {
				n := 0
				for i := range c.Relays {
					if c.Relays[i].HasFlag(directory.FlagRunning) {
						n++
					}
				}
				return float64(n)
			}),
	} {
		if err := reg.Register(g); err != nil {
			return err
		}
	}
	return nil
}
