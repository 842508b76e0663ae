package directory

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Fetcher keeps a verified, current consensus for a client or relay: it
// bootstraps from its Store, fetches from authorities or caches, and
// refreshes when a newer consensus is due (spec/04-directory.md §11).
// Set the exported fields, then call Run (or Fetch); they must not change
// afterwards.
type Fetcher struct {
	// Sources are host:port (or http:// URLs) of authorities and caches.
	Sources []string
	// Trust is the set of authorities whose signatures count.
	Trust AuthoritySet
	// Store, when set, keeps the last valid consensus across restarts.
	Store *Store
	// HTTPClient is used for fetches; nil means a client with a 30 s timeout.
	HTTPClient *http.Client
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives one line per fetch failure; nil discards.
	Logger *slog.Logger

	mu  sync.Mutex
	cur *Consensus
	// installed is closed, and cleared, when a newer consensus is
	// installed (Installed).
	installed chan struct{}
}

// ErrNoConsensus is returned by Current before any consensus was obtained.
var ErrNoConsensus = errors.New("directory: no consensus yet")

func (f *Fetcher) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

func (f *Fetcher) client() *http.Client {
	if f.HTTPClient != nil {
		return f.HTTPClient
	}
	return &http.Client{Timeout: 30 * time.Second}
}

func (f *Fetcher) logger() *slog.Logger {
	if f.Logger != nil {
		return f.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// Current returns the consensus to use now. Once its valid-until has passed
// it refuses with an error wrapping ErrExpired; before any consensus it
// returns ErrNoConsensus.
func (f *Fetcher) Current() (*Consensus, error) {
	f.mu.Lock()
	c := f.cur
	f.mu.Unlock()
	if c == nil {
		return nil, ErrNoConsensus
	}
	if now := f.now(); !now.Before(c.ValidUntil) {
		return nil, fmt.Errorf("%w: the last valid consensus ran out at %s (now %s) and no newer one could be fetched",
			ErrExpired, fmtTime(c.ValidUntil), fmtTime(now))
	}
	return c, nil
}

// Installed returns a channel closed when a consensus newer than the one
// now held is installed, so that a caller waiting for the network to allow
// something (a client's first circuit) acts at once rather than at its next
// poll.
func (f *Fetcher) Installed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.installed == nil {
		f.installed = make(chan struct{})
	}
	return f.installed
}

// Bootstrap loads the stored consensus, if any still verifies.
func (f *Fetcher) Bootstrap() error {
	if f.Store == nil {
		return nil
	}
	c, err := f.Store.Load(f.Trust, f.now())
	if err != nil {
		if errors.Is(err, errNoStoredConsensus) {
			return nil
		}
		return err
	}
	f.install(c, false)
	return nil
}

// install makes c current if it is newer than what is held.
func (f *Fetcher) install(c *Consensus, save bool) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cur != nil && !c.ValidAfter.After(f.cur.ValidAfter) {
		return false
	}
	f.cur = c
	if f.installed != nil {
		close(f.installed)
		f.installed = nil
	}
	if save && f.Store != nil {
		if err := f.Store.Save(c.Raw()); err != nil {
			f.logger().Warn("saving consensus", "err", err)
		}
	}
	return true
}

// Fetch tries the sources in random order and installs the first consensus
// that verifies. It returns the consensus now current.
func (f *Fetcher) Fetch(ctx context.Context) (*Consensus, error) {
	if len(f.Sources) == 0 {
		return nil, errors.New("directory: no consensus sources configured")
	}
	var errs []error
	for _, i := range rand.Perm(len(f.Sources)) {
		src := f.Sources[i]
		url := src
		if !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://") {
			url = "http://" + url
		}
		b, err := httpGet(ctx, f.client(), strings.TrimSuffix(url, "/")+PathConsensus, MaxConsensusSize)
		if err == nil {
			var u *Unverified[Consensus]
			if u, err = ParseConsensus(b); err == nil {
				var c *Consensus
				if c, err = u.Verify(f.Trust, f.now()); err == nil {
					f.install(c, true)
					return f.Current()
				}
			}
		}
		errs = append(errs, fmt.Errorf("%s: %w", src, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("directory: fetching consensus: %w", errors.Join(errs...))
}

// nextRefresh is when to look for a newer consensus: the next one is
// published at this one's fresh-until, so shortly after it, spread over the
// first eighth of the remaining validity so caches are not hit all at once.
func (f *Fetcher) nextRefresh(c *Consensus) time.Time {
	spread := c.ValidUntil.Sub(c.FreshUntil) / 8
	if spread <= 0 {
		return c.FreshUntil
	}
	return c.FreshUntil.Add(time.Duration(rand.Int64N(int64(spread))))
}

// Run bootstraps, then keeps the consensus fresh until ctx ends. Failed
// fetches are retried with exponential backoff (1 s up to a minute).
func (f *Fetcher) Run(ctx context.Context) error {
	if err := f.Bootstrap(); err != nil {
		f.logger().Warn("stored consensus not used", "err", err)
	}
	backoff := time.Second
	for {
		wait := time.Duration(0)
		f.mu.Lock()
		c := f.cur
		f.mu.Unlock()
		if c != nil {
			wait = f.nextRefresh(c).Sub(f.now())
		}
		if wait > 0 {
			if !sleepCtx(ctx, wait) {
				return ctx.Err()
			}
		}
		before := c
		if _, err := f.Fetch(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			f.logger().Info("consensus fetch failed", "err", err)
		}
		f.mu.Lock()
		got := f.cur != before
		f.mu.Unlock()
		if got {
			backoff = time.Second
			continue
		}
		if !sleepCtx(ctx, backoff) {
			return ctx.Err()
		}
		backoff = min(2*backoff, time.Minute)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Cache is what a relay runs so that clients need not hit the authorities:
// it keeps a verified consensus with its Fetcher and serves it at the same
// path as an authority (GET /unfed/dir/v1/consensus).
type Cache struct {
	// Fetcher obtains and verifies the consensus.
	Fetcher *Fetcher
}

// Run keeps the cached consensus fresh until ctx ends.
func (c *Cache) Run(ctx context.Context) error { return c.Fetcher.Run(ctx) }

// Handler serves the cached consensus; 503 when none is current.
func (c *Cache) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathConsensus, func(w http.ResponseWriter, r *http.Request) {
		cur, _ := c.Fetcher.Current()
		serveConsensus(w, cur, c.Fetcher.now())
	})
	return mux
}
