package obs

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRedaction(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		var buf bytes.Buffer
		log, err := NewLogger(&buf, LogConfig{Format: format})
		if err != nil {
			t.Fatal(err)
		}
		log.Info("event", "prompt", "tell me a secret", "client_addr", "10.1.2.3:4444",
			Addr("peer", "192.0.2.7:9001"), "circ", 12345, "relay", "ABCDEF")
		out := buf.String()
		for _, leak := range []string{"tell me a secret", "10.1.2.3", "192.0.2.7", "12345"} {
			if strings.Contains(out, leak) {
				t.Errorf("%s log leaks %q: %s", format, leak, out)
			}
		}
		if !strings.Contains(out, "ABCDEF") {
			t.Errorf("%s log lost a public value: %s", format, out)
		}
	}
}

func TestUnsafeLoggingStillHidesContent(t *testing.T) {
	var buf bytes.Buffer
	log, _ := NewLogger(&buf, LogConfig{Unsafe: true})
	log.Info("event", "prompt", "tell me a secret", Addr("peer", "192.0.2.7:9001"))
	if out := buf.String(); strings.Contains(out, "tell me a secret") || !strings.Contains(out, "192.0.2.7") {
		t.Fatalf("unsafe log: %s", out)
	}
}

func TestSensitiveValueRedactsEverywhere(t *testing.T) {
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("event", Addr("peer", "192.0.2.7:9001"))
	if strings.Contains(buf.String(), "192.0.2.7") {
		t.Fatalf("plain handler leaks: %s", buf.String())
	}
}

func TestBadLogConfig(t *testing.T) {
	if _, err := NewLogger(io.Discard, LogConfig{Level: "loud"}); err == nil {
		t.Error("bad level accepted")
	}
	if _, err := NewLogger(io.Discard, LogConfig{Format: "xml"}); err == nil {
		t.Error("bad format accepted")
	}
}

func TestMetricsAndHealth(t *testing.T) {
	reg := NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: "test_events_total", Help: "Events."})
	reg.MustRegister(c)
	c.Inc()
	var healthErr error
	s, err := ListenMetrics("127.0.0.1:0", reg, func() error { return healthErr }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + s.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("healthz = %d %q", code, body)
	}
	healthErr = errors.New("no consensus")
	if code, body := get("/healthz"); code != 503 || !strings.Contains(body, "no consensus") {
		t.Fatalf("unhealthy healthz = %d %q", code, body)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "unfed_test_events_total 1") {
		t.Fatalf("metrics = %d %q", code, body)
	}
}

func TestAnnounceListener(t *testing.T) {
	var buf bytes.Buffer
	AnnounceListener(&buf, "or", "127.0.0.1:43123")
	if buf.String() != "listening kind=or addr=127.0.0.1:43123\n" {
		t.Fatalf("%q", buf.String())
	}
}

func TestLintRegistry(t *testing.T) {
	reg := NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: "good_total", Help: "Good."}))
	if err := LintRegistry(reg); err != nil {
		t.Fatalf("clean registry: %v", err)
	}
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "bad_counter", Help: "Bad."}))
	err := LintRegistry(reg)
	if err == nil || !strings.Contains(err.Error(), "bad_counter") {
		t.Fatalf("bad metric not reported: %v", err)
	}
}

// TestMetricsSlowClients: connections that hold every slot of the metrics
// listener without sending a request are evicted for a real scrape.
func TestMetricsSlowClients(t *testing.T) {
	s, err := ListenMetrics("127.0.0.1:0", NewRegistry(), nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var idle []net.Conn
	for range MetricsMaxConns + 4 {
		c, err := net.Dial("tcp", s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle = append(idle, c)
	}
	client := &http.Client{Timeout: 4 * time.Second} // inside the 5 s header timeout
	resp, err := client.Get("http://" + s.Addr() + "/healthz")
	if err != nil {
		t.Fatalf("healthz with %d idle connections open: %v", len(idle), err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("healthz: %d", resp.StatusCode)
	}
}
