package directory

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Publisher uploads a relay's descriptor to every authority: at start, when
// Changed is called, and every Interval; a failed upload to one authority is
// retried with exponential backoff until it succeeds or a newer descriptor
// replaces it (spec/04-directory.md §3.5).
type Publisher struct {
	// Authorities are the authorities' host:port (or http:// URLs).
	Authorities []string
	// Interval is the re-upload period; 0 means 1 hour. Authorities drop
	// descriptors older than their descriptor-max-age, so keep it below that.
	Interval time.Duration
	// Sign returns a freshly signed descriptor (published time now).
	Sign func(now time.Time) ([]byte, error)
	// HTTPClient is used for uploads; nil means a client with a 30 s timeout.
	HTTPClient *http.Client
	// Logger receives upload failures; nil discards.
	Logger *slog.Logger

	once    sync.Once
	kick    chan struct{}
	mu      sync.Mutex
	lastErr map[string]error // per authority; nil after a success
}

func (p *Publisher) init() {
	p.once.Do(func() {
		p.kick = make(chan struct{}, 1)
		p.lastErr = map[string]error{}
	})
}

// Changed asks for a new descriptor to be signed and uploaded now.
func (p *Publisher) Changed() {
	p.init()
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// Uploaded reports, per authority, whether its last upload succeeded;
// authorities not tried yet are absent.
func (p *Publisher) Uploaded() map[string]bool {
	p.init()
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]bool{}
	for a, err := range p.lastErr {
		out[a] = err == nil
	}
	return out
}

// Run uploads until ctx ends.
func (p *Publisher) Run(ctx context.Context) error {
	p.init()
	log := p.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	client := p.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	interval := p.Interval
	if interval <= 0 {
		interval = time.Hour
	}
	workers := make([]chan []byte, len(p.Authorities))
	var wg sync.WaitGroup
	for i, addr := range p.Authorities {
		workers[i] = make(chan []byte, 1)
		wg.Go(func() { p.uploader(ctx, client, log, addr, interval, workers[i]) })
	}
	defer wg.Wait()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if b, err := p.Sign(time.Now()); err != nil {
			log.Warn("signing descriptor", "err", err)
		} else {
			for _, w := range workers {
				select { // replace a descriptor not yet taken
				case <-w:
				default:
				}
				w <- b
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		case <-p.kick:
		}
	}
}

func (p *Publisher) uploader(ctx context.Context, client *http.Client, log *slog.Logger, addr string, interval time.Duration, in <-chan []byte) {
	url := addr
	if !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://") {
		url = "http://" + url
	}
	url = strings.TrimSuffix(url, "/") + PathDescriptor
	maxBackoff := max(interval/4, time.Second)
	for {
		var b []byte
		select {
		case <-ctx.Done():
			return
		case b = <-in:
		}
		for backoff := time.Second; ; backoff = min(2*backoff, maxBackoff) {
			err := httpPost(ctx, client, url, b, nil)
			p.mu.Lock()
			p.lastErr[addr] = err
			p.mu.Unlock()
			if err == nil || ctx.Err() != nil {
				break
			}
			log.Info("descriptor upload failed", "authority", addr, "err", err, "retry_in", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case nb := <-in:
				b = nb
				t.Stop()
			case <-t.C:
			}
		}
	}
}
