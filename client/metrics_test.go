package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/unfed/unfed/client/openai"
	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/relay/obs"
)

// TestClientMetricsLint: every client metric passes the metric-name lint.
func TestClientMetricsLint(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newClientMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	r := m.startRequest(ModeConfidential)
	r.token()
	r.token()
	r.done(openai.Usage{PromptTokens: 3, CompletionTokens: 2}, nil)
	m.built(ModeAnonymous, true)
	m.circuitFailed("build", ErrNoPath, nil)
	if err := obs.LintRegistry(reg); err != nil {
		t.Fatal(err)
	}
}

func TestFailureReasonAndOutcome(t *testing.T) {
	for err, want := range map[error]string{
		&busyError{until: time.Now()}:                         "busy",
		fmt.Errorf("x: %w", ErrNoPath):                        "no_path",
		fmt.Errorf("x: %w", directory.ErrNoConsensus):         "no_consensus",
		fmt.Errorf("dial: %w", context.DeadlineExceeded):      "timeout",
		errors.New("something nobody can attribute happened"): "unattributed",
	} {
		if got := failureReason(err, nil); got != want {
			t.Errorf("failureReason(%v) = %s, want %s", err, got, want)
		}
	}
	for err, want := range map[error]string{
		nil:                                   "ok",
		context.Canceled:                      "canceled",
		&openai.UnavailableError{Reason: "x"}: "unavailable",
		errors.New("boom"):                    "error",
	} {
		if got := requestOutcome(err); got != want {
			t.Errorf("requestOutcome(%v) = %s, want %s", err, got, want)
		}
	}
}

// TestClientMetricsAfterGeneration: one real generation over the shared
// network shows on the client's /metrics as one ok request, its prompt and
// generated tokens, one time-to-first-token sample, one interval per later
// token and at least one circuit built.
func TestClientMetricsAfterGeneration(t *testing.T) {
	n := sharedNet(t)
	rc := startClient(t, n, t.TempDir(), func(c *Config) {
		c.Circuit.Mode = string(ModeAnonymous)
		c.Metrics.Listen = "127.0.0.1:0"
	})
	if rc.metrics == "" {
		t.Fatal("no metrics listener announced")
	}
	const tokens = 6
	rc.complete(t, n.modelID, tokens)
	page := scrape(t, rc.metrics)
	for _, c := range []struct {
		series string
		want   float64
	}{
		{`unfed_client_requests_total{mode="anonymous",outcome="ok"}`, 1},
		{`unfed_client_requests_total{mode="anonymous",outcome="error"}`, 0},
		{`unfed_client_generated_tokens_total{mode="anonymous"}`, tokens},
		{`unfed_client_time_to_first_token_seconds_count{mode="anonymous"}`, 1},
		{`unfed_client_token_interval_seconds_count{mode="anonymous"}`, tokens - 1},
		{`unfed_client_request_duration_seconds_count{mode="anonymous"}`, 1},
	} {
		if got := seriesValue(t, page, c.series); got != c.want {
			t.Errorf("%s = %v, want %v", c.series, got, c.want)
		}
	}
	if got := seriesValue(t, page, `unfed_client_prompt_tokens_total{mode="anonymous"}`); got < 2 {
		t.Errorf("prompt tokens = %v", got)
	}
	// The circuit was built at start (TestSpareAtStart) or on demand.
	if got := seriesOrZero(t, page, `unfed_client_circuit_builds_total{mode="anonymous",when="on_demand"}`) +
		seriesOrZero(t, page, `unfed_client_circuit_builds_total{mode="anonymous",when="ahead"}`); got < 1 {
		t.Errorf("circuit builds = %v, want at least 1", got)
	}
	if !strings.Contains(page, `unfed_client_circuit_failures_total{reason="capacity",stage="build"} `) {
		t.Errorf("failure series not exported up front:\n%s", page)
	}
}

func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// seriesOrZero is seriesValue, 0 for a labelled series not yet counted
// (not on the page).
func seriesOrZero(t *testing.T, page, series string) float64 {
	t.Helper()
	if !strings.Contains(page, series+" ") {
		return 0
	}
	return seriesValue(t, page, series)
}

// seriesValue returns the value of one exposition line "series value".
func seriesValue(t *testing.T, page, series string) float64 {
	t.Helper()
	for _, ln := range strings.Split(page, "\n") {
		if v, ok := strings.CutPrefix(ln, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("%s: %v", ln, err)
			}
			return f
		}
	}
	t.Fatalf("series %s not on the page", series)
	return 0
}

// TestConsensusGauges: the consensus gauges read the consensus in use at
// each scrape (its valid-after and its Running relays), and are 0 without
// one.
func TestConsensusGauges(t *testing.T) {
	reg := prometheus.NewRegistry()
	var cur *directory.Consensus
	if err := registerConsensusGauges(reg, func() (*directory.Consensus, error) {
		if cur == nil {
			return nil, directory.ErrNoConsensus
		}
		return cur, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := obs.LintRegistry(reg); err != nil {
		t.Fatal(err)
	}
	read := func() (validAfter, running float64) {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			v := mf.GetMetric()[0].GetGauge().GetValue()
			switch mf.GetName() {
			case "unfed_client_consensus_valid_after_seconds":
				validAfter = v
			case "unfed_client_consensus_running_relays":
				running = v
			}
		}
		return
	}
	if va, n := read(); va != 0 || n != 0 {
		t.Fatalf("without a consensus: valid_after %v, running %v; want 0, 0", va, n)
	}
	at := time.Date(2026, 12, 8, 3, 0, 0, 0, time.UTC)
	cur = &directory.Consensus{ValidAfter: at, Relays: []directory.RouterStatus{
		{Flags: []directory.Flag{directory.FlagRunning, directory.FlagMPC}},
		{Flags: []directory.Flag{directory.FlagDealer}},
		{Flags: []directory.Flag{directory.FlagRunning}},
	}}
	if va, n := read(); va != float64(at.Unix()) || n != 2 {
		t.Fatalf("valid_after %v, running %v; want %v, 2", va, n, at.Unix())
	}
}
