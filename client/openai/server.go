package openai

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/unfed/unfed/internal/conncap"
)

// Limits bound what slow or idle clients can hold of the API server (issue
// 22; spec/08-client-api.md §2). The zero value means the defaults.
type Limits struct {
	// MaxConns caps open connections, fairly: at the cap a new connection
	// evicts the oldest one not serving a request. Default 256.
	MaxConns int
	// HeaderTimeout bounds reading a request's header. Default 10 s.
	HeaderTimeout time.Duration
	// BodyTimeout bounds reading a request's body, from the end of its
	// header; the response (a long SSE stream) is not bounded. Default 30 s.
	BodyTimeout time.Duration
	// IdleTimeout closes idle keep-alive connections. Default 60 s.
	IdleTimeout time.Duration
}

// Serve serves h on ln with the default Limits until ctx is canceled; see
// ServeLimited.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, grace time.Duration) error {
	return ServeLimited(ctx, ln, h, grace, Limits{})
}

// ServeLimited serves h on ln with the timeouts a local API wants (header
// and body reads bounded, idle keep-alive bounded, 64 KiB of headers; no
// write timeout, since streams last as long as a generation) and a fair
// connection cap, until ctx is canceled. It then gives in-flight requests
// grace to finish, closes the rest (canceling their generations) and
// returns nil. net/http's own log lines, which name client addresses, are
// dropped.
func ServeLimited(ctx context.Context, ln net.Listener, h http.Handler, grace time.Duration, lim Limits) error {
	capped := conncap.New(ln, cmp.Or(lim.MaxConns, 256))
	srv := &http.Server{
		Handler:           BodyDeadline(h, cmp.Or(lim.BodyTimeout, 30*time.Second)),
		ReadHeaderTimeout: cmp.Or(lim.HeaderTimeout, 10*time.Second),
		IdleTimeout:       cmp.Or(lim.IdleTimeout, 60*time.Second),
		MaxHeaderBytes:    64 << 10,
		ConnState:         capped.ConnState,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(capped) }()
	select {
	case err := <-errc:
		return fmt.Errorf("openai: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("openai: serve: %w", err)
	}
	return nil
}

// BodyDeadline bounds the time h's requests take to deliver their bodies:
// a read deadline d from now is set on the connection and cleared once the
// body has been read to its end, so that a long streamed response after it
// is not cut (a server-wide ReadTimeout would cancel the request when it
// fires, mid-stream). A body still arriving at the deadline fails to read,
// and the handler answers as for any broken body.
func BodyDeadline(h http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			rc := http.NewResponseController(w)
			if rc.SetReadDeadline(time.Now().Add(d)) == nil {
				r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc}
			}
		}
		h.ServeHTTP(w, r)
	})
}

// deadlineBody clears the connection's read deadline at the body's end.
type deadlineBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	once sync.Once
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) {
		b.once.Do(func() { _ = b.rc.SetReadDeadline(time.Time{}) })
	}
	return n, err
}
