package directory

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/unfed/unfed/relay/keys"
)

// The directory protocol over HTTP (spec/04-directory.md §10). Paths:
const (
	PathDescriptor        = "/unfed/dir/v1/descriptor"
	PathDescriptorByFP    = "/unfed/dir/v1/descriptor/" // + fingerprint
	PathVote              = "/unfed/dir/v1/vote"
	PathVoteCurrent       = "/unfed/dir/v1/vote/current"
	PathSignatures        = "/unfed/dir/v1/signatures"
	PathSignaturesCurrent = "/unfed/dir/v1/signatures/current"
	PathConsensus         = "/unfed/dir/v1/consensus"
)

// Handler returns the authority's HTTP handler.
func (a *Authority) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+PathDescriptor, a.handleDescriptorPost)
	mux.HandleFunc("GET "+PathDescriptorByFP+"{fp}", a.handleDescriptorGet)
	mux.HandleFunc("POST "+PathVote, a.handleVotePost)
	mux.HandleFunc("POST "+PathProof, a.handleProofPost) // fraud.go
	mux.HandleFunc("GET "+PathVoteCurrent, a.handleVoteGet)
	mux.HandleFunc("POST "+PathSignatures, a.handleSignaturesPost)
	mux.HandleFunc("GET "+PathSignaturesCurrent, a.handleSignaturesGet)
	mux.HandleFunc("GET "+PathConsensus, func(w http.ResponseWriter, r *http.Request) {
		serveConsensus(w, a.Current(), a.cfg.Now())
	})
	a.mountExplorer(mux)
	if a.cfg.Mount != nil {
		a.cfg.Mount(a, mux)
	}
	return mux
}

// readBody reads a request body of at most limit bytes, answering 413 itself.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, bool) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, fmt.Sprintf("directory: body larger than %d bytes", limit), http.StatusRequestEntityTooLarge)
		} else {
			http.Error(w, "directory: reading body failed", http.StatusBadRequest)
		}
		return nil, false
	}
	return b, true
}

func (a *Authority) handleDescriptorPost(w http.ResponseWriter, r *http.Request) {
	if !a.uploads.allow(r.RemoteAddr, a.cfg.Now()) {
		a.metrics.uploadsRefused.WithLabelValues("descriptor-rate").Inc()
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(1/a.cfg.UploadRate)))))
		http.Error(w, errRateLimited.Error(), http.StatusTooManyRequests)
		return
	}
	b, ok := readBody(w, r, MaxDescriptorSize)
	if !ok {
		return
	}
	d, err := a.AcceptDescriptor(b)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	fmt.Fprintf(w, "accepted %s\n", d.Fingerprint())
}

func (a *Authority) handleDescriptorGet(w http.ResponseWriter, r *http.Request) {
	fp, err := keys.ParseFingerprint(r.PathValue("fp"))
	if err != nil {
		http.Error(w, "directory: bad fingerprint", http.StatusBadRequest)
		return
	}
	d := a.Descriptor(fp)
	if d == nil {
		http.Error(w, "directory: no descriptor for "+fp.String(), http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=us-ascii")
	w.Write(d.Raw())
}

func (a *Authority) handleVotePost(w http.ResponseWriter, r *http.Request) {
	b, au, ok := a.readVoteUpload(w, r)
	if !ok {
		return
	}
	v, err := a.acceptVote(b)
	if err == nil && v.Authority.Fingerprint != au.from.Fingerprint {
		err = fmt.Errorf("directory: %s uploaded a vote by %s; authorities upload their own", au.from.Name, v.Authority.Fingerprint)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	fmt.Fprintf(w, "accepted vote from %s\n", v.Authority.Fingerprint)
}

// ownVote returns our vote for the most recent period we voted on.
func (a *Authority) ownVote() *Vote {
	a.mu.Lock()
	defer a.mu.Unlock()
	var best *round
	for _, r := range a.rounds {
		if r.vote != nil && (best == nil || r.validAfter.After(best.validAfter)) {
			best = r
		}
	}
	if best == nil {
		return nil
	}
	return best.vote
}

func (a *Authority) handleVoteGet(w http.ResponseWriter, r *http.Request) {
	v := a.ownVote()
	if v == nil {
		http.Error(w, "directory: no vote yet", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=us-ascii")
	w.Write(v.Raw())
}

func (a *Authority) handleSignaturesPost(w http.ResponseWriter, r *http.Request) {
	b, ok := readBody(w, r, MaxSignaturesDocSize)
	if !ok {
		return
	}
	n, err := a.acceptSignatures(b)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	fmt.Fprintf(w, "accepted %d new signers\n", n)
}

func (a *Authority) handleSignaturesGet(w http.ResponseWriter, r *http.Request) {
	d := a.signaturesFor(a.nextValidAfter(a.cfg.Now()))
	if d == nil {
		d = a.signaturesFor(a.nextValidAfter(a.cfg.Now()).Add(-a.cfg.Interval))
	}
	if d == nil {
		http.Error(w, "directory: no consensus signatures yet", http.StatusNotFound)
		return
	}
	b, err := d.encode()
	if err != nil {
		http.Error(w, "directory: encoding signatures failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=us-ascii")
	w.Write(b)
}

// serveConsensus answers GET /unfed/dir/v1/consensus with c unless it is
// missing or expired.
func serveConsensus(w http.ResponseWriter, c *Consensus, now time.Time) {
	if c == nil || !now.Before(c.ValidUntil) {
		http.Error(w, "directory: no current consensus", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=us-ascii")
	w.Header().Set("Last-Modified", c.ValidAfter.UTC().Format(http.TimeFormat))
	w.Write(c.Raw())
}

// peers returns every configured authority but this one.
func (a *Authority) peers() []*TrustedAuthority {
	var out []*TrustedAuthority
	for i := range a.trust.Authorities {
		if p := &a.trust.Authorities[i]; p.Fingerprint != a.self.Fingerprint {
			out = append(out, p)
		}
	}
	return out
}

// broadcast POSTs body to path on every peer, concurrently, until ctx ends.
func (a *Authority) broadcast(ctx context.Context, path string, body []byte) {
	var wg sync.WaitGroup
	for _, p := range a.peers() {
		wg.Go(func() {
			var hdr http.Header
			if path == PathVote {
				now := a.cfg.Now()
				s, err := a.signerAt(now)
				if err != nil {
					a.log.Warn("cannot sign the vote upload", "peer", p.Name, "err", err)
					return
				}
				hdr = http.Header{HeaderAuthority: {signUpload(s, path, now, body)}}
			}
			if err := httpPost(ctx, a.cfg.HTTPClient, "http://"+p.Address+path, body, hdr); err != nil {
				a.log.Info("peer did not take our document", "peer", p.Name, "path", path, "err", err)
			}
		})
	}
	wg.Wait()
}

func httpPost(ctx context.Context, c *http.Client, url string, body []byte, hdr http.Header) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "text/plain; charset=us-ascii")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(msg))
	}
	return nil
}

// httpGet fetches url, reading at most limit bytes.
func httpGet(ctx context.Context, c *http.Client, url string, limit int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("response larger than %d bytes", limit)
	}
	if resp.StatusCode != http.StatusOK {
		if len(b) > 512 {
			b = b[:512]
		}
		return nil, fmt.Errorf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	return b, nil
}

// Serve runs the voting schedule and serves HTTP on ln until ctx ends.
func (a *Authority) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: 2 * time.Minute, WriteTimeout: 2 * time.Minute, IdleTimeout: time.Minute,
		ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelDebug)}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.runSchedule(ctx)
	}()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	srv.Shutdown(shutCtx)
	<-done
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// RunAuthority is the library entry point of cmd/dirauth: it opens the
// authority, binds cfg.Listen (":0" allowed), calls onListen("dir",
// boundAddr), and runs until ctx ends.
func RunAuthority(ctx context.Context, cfg AuthorityConfig, logger *slog.Logger, reg *prometheus.Registry, onListen func(kind, addr string)) error {
	a, err := NewAuthority(cfg, logger, reg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", a.cfg.Listen)
	if err != nil {
		return fmt.Errorf("directory: listen: %w", err)
	}
	if onListen != nil {
		onListen("dir", ln.Addr().String())
	}
	a.log.Info("directory authority running", "fingerprint", a.self.Fingerprint.String(), "interval", a.cfg.Interval)
	return a.Serve(ctx, ln)
}
