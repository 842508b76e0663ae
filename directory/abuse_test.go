package directory_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/directory/dirtest"
	"github.com/unfed/unfed/relay/keys"
)

// Abuse of an authority's upload paths (issue 22, spec §3.3, §3.5, §10.1):
// vote uploads from anyone, descriptor floods and clock skew.

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// authPair makes two configured authorities (not serving): a, under test,
// and its peer b, whose identity signs uploads.
func authPair(t *testing.T, tweak func(*directory.AuthorityConfig)) (a, b *directory.Authority, bID *keys.Identity, clk *clock) {
	t.Helper()
	clk = &clock{t: time.Date(2026, 3, 4, 5, 6, 0, 0, time.UTC)}
	var entries []directory.AuthorityEntry
	var dirs []string
	var ids []*keys.Identity
	for i := range 2 {
		dir := t.TempDir()
		ks, err := keys.Open(dir, keys.Options{})
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, directory.EntryFor(fmt.Sprintf("auth%d", i), fmt.Sprintf("127.0.0.1:%d", 7000+i), ks.Identity(), nil))
		dirs, ids = append(dirs, dir), append(ids, ks.Identity())
	}
	var out []*directory.Authority
	for i := range 2 {
		cfg := directory.AuthorityConfig{DataDir: dirs[i], Authorities: entries, Interval: time.Hour, Now: clk.Now,
			Prober: &dirtest.Prober{}, Params: testParams()}
		if tweak != nil {
			tweak(&cfg)
		}
		a, err := directory.NewAuthority(cfg, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	return out[0], out[1], ids[1], clk
}

// countingBody is an endless request body that counts what was read and
// can hold the reader until released.
type countingBody struct {
	n       atomic.Int64
	hold    chan struct{} // when set, reads wait for it to close
	reading chan struct{} // when set, closed at the first read
	once    sync.Once
}

func (c *countingBody) Read(p []byte) (int, error) {
	if c.reading != nil {
		c.once.Do(func() { close(c.reading) })
	}
	if c.hold != nil {
		<-c.hold
	}
	for i := range p {
		p[i] = 'a'
	}
	c.n.Add(int64(len(p)))
	return len(p), nil
}

func (c *countingBody) Close() error { return nil }

func postVote(h http.Handler, header string, body io.ReadCloser, length int64) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, directory.PathVote, body)
	req.ContentLength = length
	if header != "" {
		req.Header.Set(directory.HeaderAuthority, header)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// TestVoteUploadBounded: a vote upload is authenticated as coming from a
// configured authority before any of its body is read; its body is bounded
// by what a vote for the network's size needs; one upload per authority
// at a time. A real vote with a valid header is accepted.
func TestVoteUploadBounded(t *testing.T) {
	a, b, bID, clk := authPair(t, nil)
	h := a.Handler()
	now := clk.Now()
	stranger, err := keys.NewIdentity(nil)
	if err != nil {
		t.Fatal(err)
	}
	limit := a.VoteLimit()
	if limit >= directory.MaxVoteSize || limit < 1<<20 {
		t.Fatalf("vote limit for an empty network is %d bytes, want between 1 MiB and %d", limit, directory.MaxVoteSize)
	}
	for _, tc := range []struct {
		name   string
		header string
		length int64
		code   int
	}{
		{"no header", "", -1, http.StatusUnauthorized},
		{"garbage header", "hello", -1, http.StatusUnauthorized},
		{"stranger", directory.SignUpload(stranger, directory.PathVote, now, []byte("x")), -1, http.StatusUnauthorized},
		{"stale time", directory.SignUpload(bID, directory.PathVote, now.Add(-time.Hour), []byte("x")), -1, http.StatusUnauthorized},
		{"other path", directory.SignUpload(bID, directory.PathSignatures, now, []byte("x")), -1, http.StatusUnauthorized},
		{"declared too large", directory.SignUpload(bID, directory.PathVote, now, []byte("x")), limit + 1, http.StatusRequestEntityTooLarge},
		// An authority whose identity is offline signs with its certified
		// signing key (§8.4): only a certificate by the uploader's own
		// identity, unexpired, counts.
		{"signing key certified by a stranger", directory.SignUploadWith(certified(t, stranger, now.Add(time.Hour)), directory.PathVote, now, []byte("x")), -1, http.StatusUnauthorized},
		{"expired signing-key certificate", directory.SignUploadWith(certified(t, bID, now.Add(-time.Minute)), directory.PathVote, now, []byte("x")), -1, http.StatusUnauthorized},
	} {
		body := &countingBody{}
		rec := postVote(h, tc.header, body, tc.length)
		if rec.Code != tc.code || body.n.Load() != 0 {
			t.Errorf("%s: HTTP %d after reading %d body bytes, want %d before reading any (%s)", tc.name, rec.Code, body.n.Load(), tc.code,
				strings.TrimSpace(rec.Body.String()))
		}
	}
	// Undeclared length: reading stops at the bound.
	body := &countingBody{}
	rec := postVote(h, directory.SignUpload(bID, directory.PathVote, now, []byte("x")), body, -1)
	if rec.Code != http.StatusRequestEntityTooLarge || body.n.Load() > limit+64<<10 {
		t.Errorf("endless body: HTTP %d after %d bytes, want 413 after at most %d", rec.Code, body.n.Load(), limit+64<<10)
	}
	// A second upload from the same authority while one is in progress.
	slow := &countingBody{hold: make(chan struct{}), reading: make(chan struct{})}
	done := make(chan int)
	go func() {
		done <- postVote(h, directory.SignUpload(bID, directory.PathVote, now, []byte("x")), slow, -1).Code
	}()
	<-slow.reading
	second := &countingBody{}
	code := postVote(h, directory.SignUpload(bID, directory.PathVote, now, []byte("y")), second, 1).Code
	close(slow.hold)
	<-done
	if code != http.StatusTooManyRequests || second.n.Load() != 0 {
		t.Errorf("concurrent upload from one authority: HTTP %d after %d bytes, want 429 before reading", code, second.n.Load())
	}
	// The real thing: b's vote, signed for its body.
	v, err := b.BuildVote(a.NextValidAfter(now))
	if err != nil {
		t.Fatal(err)
	}
	raw := v.Raw()
	if rec := postVote(h, directory.SignUpload(bID, directory.PathVote, now, raw), io.NopCloser(bytes.NewReader(raw)), int64(len(raw))); rec.Code != http.StatusOK {
		t.Fatalf("b's vote with a valid header: HTTP %d %s", rec.Code, rec.Body.String())
	}
	// Signed by b's certified signing key instead of its identity: the
	// header is accepted, and the body read and judged (a second copy of the
	// vote, or garbage: 400, not 401).
	sk := certified(t, bID, now.Add(time.Hour))
	if rec := postVote(h, directory.SignUploadWith(sk, directory.PathVote, now, []byte("x")), io.NopCloser(bytes.NewReader([]byte("x"))), 1); rec.Code != http.StatusBadRequest {
		t.Fatalf("an upload signed by b's certified signing key: HTTP %d %s, want 400 (header accepted, body refused)", rec.Code, rec.Body.String())
	}
	// The same header on another body (a replayed header) is refused.
	other := append(bytes.Clone(raw), '\n')
	if rec := postVote(h, directory.SignUpload(bID, directory.PathVote, now, raw), io.NopCloser(bytes.NewReader(other)), int64(len(other))); rec.Code != http.StatusBadRequest {
		t.Fatalf("a header replayed on another body: HTTP %d, want 400", rec.Code)
	}
}

// postDescriptor uploads doc to h from remote (host:port).
func postDescriptor(h http.Handler, remote string, doc []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, directory.PathDescriptor, bytes.NewReader(doc))
	req.RemoteAddr = remote
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// TestDescriptorFloodBounded: uploads are rate-limited per source address,
// relays per IP address are capped, relays that fail reachability are left
// out of the vote and then forgotten, and the store is bounded.
func TestDescriptorFloodBounded(t *testing.T) {
	prober := &dirtest.Prober{}
	a, _, _, clk := authPair(t, func(c *directory.AuthorityConfig) {
		c.UploadRate, c.UploadBurst, c.MaxRelaysPerAddr, c.MaxRelays, c.Prober = 1, 5, 2, 12, prober
	})
	h := a.Handler()
	rnd := dirtest.Rand("flood")
	n := 0
	relay := func(ip string) *dirtest.Relay {
		n++
		r, err := dirtest.NewRelay(rnd, fmt.Sprintf("%s:%d", ip, 1000+n), clk.Now(), directory.RoleGuard)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	sign := func(r *dirtest.Relay) []byte {
		b, err := r.Sign(clk.Now())
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// Rate: a burst of 5 from one source, then 429 with Retry-After; another
	// source is not affected; a second later one more is allowed.
	var codes []int
	for i := range 8 {
		rec := postDescriptor(h, "198.51.100.9:4000", sign(relay(fmt.Sprintf("203.0.113.%d", i+1))))
		codes = append(codes, rec.Code)
		if rec.Code == http.StatusTooManyRequests && rec.Header().Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
	}
	want := []int{200, 200, 200, 200, 200, 429, 429, 429}
	if fmt.Sprint(codes) != fmt.Sprint(want) {
		t.Fatalf("burst from one source: %v, want %v", codes, want)
	}
	if rec := postDescriptor(h, "198.51.100.10:4000", sign(relay("203.0.113.50"))); rec.Code != 200 {
		t.Fatalf("another source: HTTP %d %s", rec.Code, rec.Body.String())
	}
	clk.Add(time.Second)
	if rec := postDescriptor(h, "198.51.100.9:4001", sign(relay("203.0.113.51"))); rec.Code != 200 {
		t.Fatalf("after a second: HTTP %d %s", rec.Code, rec.Body.String())
	}

	// Per address: two relays at 192.0.2.7, a third refused, an update kept.
	r1, r2, r3 := relay("192.0.2.7"), relay("192.0.2.7"), relay("192.0.2.7")
	for _, r := range []*dirtest.Relay{r1, r2} {
		if _, err := a.AcceptDescriptor(sign(r)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.AcceptDescriptor(sign(r3)); err == nil || !strings.Contains(err.Error(), "192.0.2.7") {
		t.Fatalf("third relay at one address: err = %v, want the per-address limit", err)
	}
	clk.Add(time.Second)
	if _, err := a.AcceptDescriptor(sign(r1)); err != nil {
		t.Fatalf("update of a held relay at a full address: %v", err)
	}

	// Reachability: r1 is down; the vote leaves it out, and after three
	// failed probes it is forgotten, which frees its address for r3.
	prober.SetDown(r1.Fingerprint(), true)
	ctx := context.Background()
	for i := range 3 {
		va := a.NextValidAfter(clk.Now())
		a.ProbeAll(ctx, va)
		v, err := a.BuildVote(va)
		if err != nil {
			t.Fatal(err)
		}
		listed := false
		for _, rs := range v.Relays {
			listed = listed || rs.Fingerprint == r1.Fingerprint()
		}
		if listed {
			t.Fatalf("probe %d: the vote lists a relay that failed its probe", i+1)
		}
		if len(v.Relays) == 0 {
			t.Fatal("the vote lists no relay")
		}
	}
	if a.Descriptor(r1.Fingerprint()) != nil {
		t.Fatal("a relay that failed three probes is still held")
	}
	if _, err := a.AcceptDescriptor(sign(r3)); err != nil {
		t.Fatalf("relay at an address freed by a forgotten one: %v", err)
	}

	// The store: MaxRelays (12) bounds new relays whatever their sources.
	held := 0
	for i := range 20 {
		if _, err := a.AcceptDescriptor(sign(relay(fmt.Sprintf("100.64.0.%d", i+1)))); err == nil {
			held++
		} else if !strings.Contains(err.Error(), "limit of 12 relays") {
			t.Fatalf("unexpected refusal: %v", err)
		}
	}
	if held != 3 { // 9 held before: 7 from the rate part, r2, r3
		t.Fatalf("took %d new relays with 9 held and a limit of 12, want 3", held)
	}
	if v, err := a.BuildVote(a.NextValidAfter(clk.Now())); err != nil || len(v.Relays) > 12 {
		t.Fatalf("vote: %v, %d relays, want at most 12", err, len(v.Relays))
	}
}

// TestFutureDescriptorRejected: a descriptor dated beyond MaxDescriptorSkew
// ahead is refused; one dated ahead within it does not block the relay's
// next descriptor dated at the true time.
func TestFutureDescriptorRejected(t *testing.T) {
	a, _, _, clk := authPair(t, nil)
	now := clk.Now()
	r, err := dirtest.NewRelay(dirtest.Rand("future"), "203.0.113.1:443", now, directory.RoleGuard)
	if err != nil {
		t.Fatal(err)
	}
	for _, ahead := range []time.Duration{4 * time.Minute, directory.MaxDescriptorSkew + time.Second} {
		b, _ := r.Sign(now.Add(ahead))
		if _, err := a.AcceptDescriptor(b); err == nil || !strings.Contains(err.Error(), "ahead") {
			t.Fatalf("descriptor dated %s ahead: err = %v, want refused as ahead of the clock", ahead, err)
		}
	}
	b, _ := r.Sign(now.Add(directory.MaxDescriptorSkew))
	if _, err := a.AcceptDescriptor(b); err != nil {
		t.Fatalf("descriptor dated the skew bound ahead: %v", err)
	}
	clk.Add(time.Second)
	b, _ = r.Sign(clk.Now())
	if _, err := a.AcceptDescriptor(b); err != nil {
		t.Fatalf("next descriptor at the true time after one dated ahead: %v", err)
	}
	// Replaying an older descriptor is still refused.
	b, _ = r.Sign(now.Add(-time.Minute))
	if _, err := a.AcceptDescriptor(b); err == nil {
		t.Fatal("an older descriptor replaced a newer one")
	}
}
