package obs

// The profiling listener: Go's net/http/pprof handlers (CPU, heap,
// goroutine, block, mutex and allocation profiles, and the execution trace)
// on an address of their own, off unless an operator names one. A profile
// shows the process's stacks and the sizes of what it holds, never the
// content of a request, but it is still no business of anyone but the
// operator: the address must be a loopback one unless the operator says
// otherwise, and a bare :PORT binds 127.0.0.1.

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/unfed/unfed/internal/conncap"
)

// PprofMaxConns caps the profiling listener's connections.
const PprofMaxConns = 8

// PprofMaxSeconds is the longest CPU profile or execution trace served
// (seconds=); pprof itself extends the write deadline by whatever is asked.
const PprofMaxSeconds = 300

// PprofAddr checks a profiling address and returns the one to bind: a bare
// :PORT becomes 127.0.0.1:PORT, "localhost" 127.0.0.1. Any host that is not
// a loopback IP is refused unless allowRemote is set (a host name could
// resolve anywhere).
func PprofAddr(addr string, allowRemote bool) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("obs: pprof address %q: want host:port", addr)
	}
	switch strings.ToLower(host) {
	case "", "localhost":
		host = "127.0.0.1"
	}
	if ip := net.ParseIP(host); (ip == nil || !ip.IsLoopback()) && !allowRemote {
		return "", fmt.Errorf("obs: pprof address %q is not a loopback address: profiles show the process's stacks and memory to whoever connects; bind 127.0.0.1 (or set pprof_allow_remote)", addr)
	}
	return net.JoinHostPort(host, port), nil
}

// PprofServer serves /debug/pprof/.
type PprofServer struct {
	srv *http.Server
	ln  net.Listener
}

// ListenPprof binds addr (checked by PprofAddr) and serves the pprof
// handlers under /debug/pprof/.
func ListenPprof(addr string, allowRemote bool, log *slog.Logger) (*PprofServer, error) {
	bind, err := PprofAddr(addr, allowRemote)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("obs: pprof listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/", pprof.Index) // heap, goroutine, allocs, block, mutex, threadcreate
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", boundSeconds(pprof.Profile))
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", boundSeconds(pprof.Trace))
	capped := conncap.New(ln, PprofMaxConns)
	s := &PprofServer{ln: ln, srv: &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second, // pprof adds a profile's seconds
		IdleTimeout:       30 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ConnState:         capped.ConnState,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}}
	go func() {
		if err := s.srv.Serve(capped); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("pprof server stopped", "err", err)
		}
	}()
	return s, nil
}

// boundSeconds refuses a seconds= that is not a number in (0,
// PprofMaxSeconds].
func boundSeconds(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if v := r.FormValue("seconds"); v != "" {
			if sec, err := strconv.ParseFloat(v, 64); err != nil || !(sec > 0 && sec <= PprofMaxSeconds) {
				http.Error(w, fmt.Sprintf("seconds=%q: want a number in (0, %d]", v, PprofMaxSeconds), http.StatusBadRequest)
				return
			}
		}
		h(w, r)
	}
}

// Addr is the bound address.
func (s *PprofServer) Addr() string { return s.ln.Addr().String() }

// Close stops the server at once: a profile in progress is cut off rather
// than holding up shutdown for its seconds.
func (s *PprofServer) Close() error { return s.srv.Close() }
