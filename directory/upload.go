package directory

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/unfed/unfed/relay/keys"
	"golang.org/x/time/rate"
)

// Upload admission (spec/04-directory.md §10.1): what an authority checks
// before it reads an uploaded body, so that a peer cannot make it buffer
// more than the network's size needs.
//
//   - POST /vote carries an Unfed-Authority header signed by a configured
//     authority; it is verified, and the body bounded by voteLimit, before
//     a byte of the body is read. One upload per authority at a time.
//   - POST /descriptor is rate-limited per source address (sourceLimiter).

// HeaderAuthority authenticates a vote upload: "FP UNIX-SECONDS SHA256HEX
// SIGHEX", the signature by FP's identity key over uploadSigMessage.
const HeaderAuthority = "Unfed-Authority"

const uploadSigContext = "unfed-vote-upload-v1"

// Vote size bounds (§10.1): a vote may be voteBaseBytes plus
// voteRelayBytes per relay of the network, counted as twice the larger of
// the relays this authority holds and those of its current consensus, plus
// voteSlackRelays; never more than MaxVoteSize.
const (
	voteBaseBytes   = 1 << 20
	voteRelayBytes  = 8 << 10
	voteSlackRelays = 256
)

func uploadSigMessage(path string, fp keys.Fingerprint, t int64, digest []byte) []byte {
	return fmt.Appendf(nil, "%s\x00%s\x00%s\x00%d\x00%x", uploadSigContext, path, fp, t, digest)
}

// signUpload returns the HeaderAuthority value for uploading body to path,
// signed as s signs (§10.1): by its identity key, or by its certified
// signing key with the certificate in front of the signature (an authority
// whose identity key is offline, §8.4).
func signUpload(s *Signer, path string, now time.Time, body []byte) string {
	d := sha256.Sum256(body)
	fp := s.fingerprint()
	msg := uploadSigMessage(path, fp, now.Unix(), d[:])
	var sig []byte
	if s.Signing != nil {
		sig = append(append(sig, s.Signing.Cert...), s.Signing.Key.Sign(msg)...)
	} else {
		sig = s.Identity.Sign(msg)
	}
	return fmt.Sprintf("%s %d %x %x", fp, now.Unix(), d, sig)
}

// uploadAuth is a verified HeaderAuthority: who uploads, and the digest
// the body must have.
type uploadAuth struct {
	from   *TrustedAuthority
	digest [32]byte
}

// verifyUpload checks a HeaderAuthority value: a configured authority other
// than this one, a time within MaxClockSkew of now, and its signature.
func (a *Authority) verifyUpload(path, h string, now time.Time) (*uploadAuth, error) {
	f := strings.Fields(h)
	if len(f) != 4 {
		return nil, fmt.Errorf("directory: missing or malformed %s header: only configured authorities upload votes", HeaderAuthority)
	}
	fp, err := keys.ParseFingerprint(f[0])
	if err != nil {
		return nil, fmt.Errorf("directory: %s: %v", HeaderAuthority, err)
	}
	p := a.trust.Lookup(fp)
	if p == nil || fp == a.self.Fingerprint {
		return nil, fmt.Errorf("directory: %s is not another configured authority", fp)
	}
	t, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return nil, fmt.Errorf("directory: %s: bad time", HeaderAuthority)
	}
	if d := now.Sub(time.Unix(t, 0)); d > MaxClockSkew || d < -MaxClockSkew {
		return nil, fmt.Errorf("directory: %s: time %d is more than %s from ours", HeaderAuthority, t, MaxClockSkew)
	}
	var au uploadAuth
	dg, err := hex.DecodeString(f[2])
	if err != nil || len(dg) != len(au.digest) {
		return nil, fmt.Errorf("directory: %s: bad digest", HeaderAuthority)
	}
	copy(au.digest[:], dg)
	sig, err := hex.DecodeString(f[3])
	msg := uploadSigMessage(path, fp, t, dg)
	if err != nil || !(keys.Verify(p.Identity, msg, sig) || verifyCertSig(p.Identity, sig, msg, now)) {
		return nil, fmt.Errorf("directory: %s: bad signature by %s", HeaderAuthority, fp)
	}
	au.from = p
	return &au, nil
}

// voteLimit is the largest vote body accepted now (§10.1).
func (a *Authority) voteLimit() int64 {
	a.mu.Lock()
	n := len(a.descs)
	if a.current != nil {
		n = max(n, len(a.current.Relays))
	}
	a.mu.Unlock()
	return min(int64(voteBaseBytes)+int64(voteRelayBytes)*int64(2*n+voteSlackRelays), MaxVoteSize)
}

// uploading marks fp's upload in progress; false when one already is.
func (a *Authority) uploading(fp keys.Fingerprint) bool {
	a.upMu.Lock()
	defer a.upMu.Unlock()
	if a.inFlight[fp] {
		return false
	}
	a.inFlight[fp] = true
	return true
}

func (a *Authority) uploaded(fp keys.Fingerprint) {
	a.upMu.Lock()
	defer a.upMu.Unlock()
	delete(a.inFlight, fp)
}

// readVoteUpload authenticates a vote upload and reads its body, answering
// errors itself.
func (a *Authority) readVoteUpload(w http.ResponseWriter, r *http.Request) ([]byte, *uploadAuth, bool) {
	au, err := a.verifyUpload(PathVote, r.Header.Get(HeaderAuthority), a.cfg.Now())
	if err != nil {
		a.metrics.uploadsRefused.WithLabelValues("vote-auth").Inc()
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return nil, nil, false
	}
	limit := a.voteLimit()
	if r.ContentLength > limit {
		a.metrics.uploadsRefused.WithLabelValues("vote-size").Inc()
		http.Error(w, fmt.Sprintf("directory: vote of %d bytes, larger than the %d this network's size allows", r.ContentLength, limit),
			http.StatusRequestEntityTooLarge)
		return nil, nil, false
	}
	if !a.uploading(au.from.Fingerprint) {
		a.metrics.uploadsRefused.WithLabelValues("vote-busy").Inc()
		w.Header().Set("Retry-After", "1")
		http.Error(w, "directory: an upload from "+au.from.Name+" is already in progress", http.StatusTooManyRequests)
		return nil, nil, false
	}
	defer a.uploaded(au.from.Fingerprint)
	b, ok := readBody(w, r, limit)
	if !ok {
		return nil, nil, false
	}
	if sha256.Sum256(b) != au.digest {
		http.Error(w, "directory: the vote does not match the digest its uploader signed", http.StatusBadRequest)
		return nil, nil, false
	}
	return b, au, true
}

// sourceLimiter rate-limits uploads per source address, Tor-style: each
// source has a token bucket; a bounded table of them, in which sources
// that have been idle long enough to refill are forgotten first and, when
// all are busy, unknown sources share one bucket. Zero value unusable; see
// newSourceLimiter.
type sourceLimiter struct {
	limit rate.Limit
	burst int
	max   int

	mu       sync.Mutex
	sources  map[string]*rate.Limiter
	overflow *rate.Limiter
}

// maxSources bounds the per-source table.
const maxSources = 4096

func newSourceLimiter(perSecond float64, burst int) *sourceLimiter {
	return &sourceLimiter{limit: rate.Limit(perSecond), burst: burst, max: maxSources,
		sources: map[string]*rate.Limiter{}, overflow: rate.NewLimiter(rate.Limit(perSecond), burst)}
}

// allow reports whether an upload from remoteAddr (host:port) may proceed now.
func (s *sourceLimiter) allow(remoteAddr string, now time.Time) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.sources[host]
	if l == nil {
		if len(s.sources) >= s.max {
			for k, v := range s.sources {
				if v.TokensAt(now) >= float64(s.burst) {
					delete(s.sources, k)
				}
			}
		}
		if len(s.sources) >= s.max {
			return s.overflow.AllowN(now, 1)
		}
		l = rate.NewLimiter(s.limit, s.burst)
		s.sources[host] = l
	}
	return l.AllowN(now, 1)
}

// errRateLimited is answered 429 with Retry-After.
var errRateLimited = errors.New("directory: too many uploads from this address; retry later")

// RateLimit wraps h so that each source address (the request's remote
// host) makes at most perSecond requests, sustained, and burst at once;
// the others are answered 429 with Retry-After. The table of sources is
// bounded like the uploads' (sources beyond it share one limiter).
func RateLimit(h http.Handler, perSecond float64, burst int) http.Handler {
	l := newSourceLimiter(perSecond, burst)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !l.allow(r.RemoteAddr, time.Now()) {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "too many requests from this address; retry later", http.StatusTooManyRequests)
			return
		}
		h.ServeHTTP(w, r)
	})
}
