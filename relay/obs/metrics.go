package obs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/unfed/unfed/internal/conncap"
)

// Namespace prefixes every UNFED metric name.
const Namespace = "unfed"

// NewRegistry returns a registry holding the Go runtime and process
// collectors; each daemon registers its own metrics on it.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// MetricsServer serves /metrics and /healthz.
type MetricsServer struct {
	srv *http.Server
	ln  net.Listener
	mux *http.ServeMux
}

// Handle adds a handler to the metrics listener, for local operator
// endpoints such as the client's /debug/circuits. It is safe to call while
// the server runs.
func (s *MetricsServer) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// MetricsMaxConns caps the metrics listener's connections.
const MetricsMaxConns = 32

// ListenMetrics binds addr (":0" allowed) and serves Prometheus metrics from
// reg at /metrics and health at /healthz: 200 "ok" when health returns nil,
// 503 with the error otherwise. health may be nil.
func ListenMetrics(addr string, reg *prometheus.Registry, health func() error, log *slog.Logger) (*MetricsServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("obs: metrics listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if health != nil {
			if err := health(); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		w.Write([]byte("ok\n"))
	})
	// Scrapes are small GETs: the whole request is bounded (ReadTimeout; no
	// long responses here), and the connections fairly capped, so that slow
	// or idle clients cannot hold the listener (issue 22).
	capped := conncap.New(ln, MetricsMaxConns)
	s := &MetricsServer{ln: ln, mux: mux, srv: &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       30 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ConnState:         capped.ConnState,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}}
	go func() {
		if err := s.srv.Serve(capped); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	return s, nil
}

// Addr is the bound address.
func (s *MetricsServer) Addr() string { return s.ln.Addr().String() }

// Close stops the server, waiting up to a few seconds for requests in flight.
func (s *MetricsServer) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}
