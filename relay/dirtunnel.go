package relay

// The directory tunnel (spec/04-directory.md §10.2): a relay with a directory
// cache — every bridge, and any relay with dir.listen — answers DIR_GET on a
// circuit that ends at it with the cache's HTTP answer, in DIR_DATA chunks,
// so a bridge user never contacts an authority. Every other message goes to
// the compute service, if the relay has one.

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/relay/circuit"
)

// dirAnswerTimeout bounds sending one answer (the client's flow-control
// credit paces it).
const dirAnswerTimeout = 2 * time.Minute

type dirHandler struct {
	inner circuit.Handler // nil on a relay without a compute role
	docs  http.Handler    // the cache's handler; nil answers 503
}

func (d dirHandler) Handle(h *circuit.Hop, m circuit.Message) {
	if m.Edge || len(m.Data) == 0 || m.Data[0] != directory.MsgDirGet {
		if d.inner != nil {
			d.inner.Handle(h, m)
		}
		return
	}
	status, body := d.answer(m.Data)
	ctx, cancel := context.WithTimeout(context.Background(), dirAnswerTimeout)
	defer cancel()
	go func() {
		select {
		case <-h.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	for _, msg := range directory.DirChunks(status, body) {
		if h.Send(ctx, msg) != nil {
			return // the circuit is gone or stalled; the client retries
		}
	}
}

func (d dirHandler) Closed(h *circuit.Hop) {
	if d.inner != nil {
		d.inner.Closed(h)
	}
}

// answer runs the cache's handler for the DIR_GET's path.
func (d dirHandler) answer(m []byte) (uint16, []byte) {
	path, err := directory.ParseDirGet(m)
	if err != nil {
		return http.StatusBadRequest, []byte("directory: " + err.Error() + "\n")
	}
	if d.docs == nil {
		return http.StatusServiceUnavailable, []byte("directory: this relay keeps no directory cache\n")
	}
	w := &bufferedResponse{header: http.Header{}}
	req := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: path}, RequestURI: path,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: http.Header{}, Host: "bridge"}
	d.docs.ServeHTTP(w, req.WithContext(context.Background()))
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.over {
		return http.StatusInternalServerError, []byte("directory: answer over " + strconv.Itoa(directory.MaxConsensusSize) + " bytes\n")
	}
	return uint16(w.status), w.body
}

// bufferedResponse is an http.ResponseWriter that keeps the answer, up to
// MaxConsensusSize bytes.
type bufferedResponse struct {
	header http.Header
	status int
	body   []byte
	over   bool
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	b.WriteHeader(http.StatusOK)
	if len(b.body)+len(p) > directory.MaxConsensusSize {
		b.over = true
		return 0, http.ErrContentLength
	}
	b.body = append(b.body, p...)
	return len(p), nil
}
