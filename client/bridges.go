package client

// Bridges (spec/01-link.md §4, spec/08-client-api.md §10): unlisted guards a
// client reaches through a pluggable transport, configured as Tor-format
// bridge lines (`obfs4 ADDR FINGERPRINT cert=… iat-mode=N`). A bridge is not
// in the consensus, so the client learns its onion keys from the signed
// descriptor the bridge sends in the link handshake, checks the signature
// and that it names the fingerprint of the bridge line, and then uses the
// bridge as its first hop. The rest of the path comes from the consensus.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/relay/link"
	"github.com/unfed/unfed/transports"
)

// bridgeStatusLifetime is how long a bridge's descriptor is reused before
// the client fetches it again.
const bridgeStatusLifetime = 10 * time.Minute

type bridgeSet struct {
	lines  []transports.Bridge
	dialer *dialer

	mu      sync.Mutex // guards cache
	cache   map[string]bridgeEntry
	failing map[string]time.Time
}

type bridgeEntry struct {
	status  *directory.RouterStatus
	fetched time.Time
}

func parseBridges(lines []string) ([]transports.Bridge, error) {
	var out []transports.Bridge
	for i, l := range lines {
		b, err := transports.ParseBridgeLine(l)
		if err != nil {
			return nil, fmt.Errorf("client: bridges[%d]: %w", i, err)
		}
		out = append(out, b)
	}
	return out, nil
}

// choose returns the first configured bridge that answers, as a router
// status usable as a path's first hop.
func (s *bridgeSet) choose(ctx context.Context) (*directory.RouterStatus, error) {
	var errs []error
	for _, b := range s.lines {
		key := b.String()
		s.mu.Lock()
		e, ok := s.cache[key]
		failedAt := s.failing[key]
		s.mu.Unlock()
		if ok && time.Since(e.fetched) < bridgeStatusLifetime {
			return e.status, nil
		}
		if !failedAt.IsZero() && time.Since(failedAt) < time.Minute {
			errs = append(errs, fmt.Errorf("bridge %s failed recently", b.Fingerprint))
			continue
		}
		st, err := s.fetch(ctx, b)
		s.mu.Lock()
		if err != nil {
			s.failing[key] = time.Now()
			errs = append(errs, err)
		} else {
			delete(s.failing, key)
			s.cache[key] = bridgeEntry{status: st, fetched: time.Now()}
		}
		s.mu.Unlock()
		if err == nil {
			return st, nil
		}
	}
	return nil, fmt.Errorf("%w: no bridge answered: %w", ErrNoPath, errors.Join(errs...))
}

// markFailed makes the next choose skip b for a while.
func (s *bridgeSet) markFailed(st *directory.RouterStatus) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range s.lines {
		if b.Fingerprint == st.Fingerprint {
			delete(s.cache, b.String())
			s.failing[b.String()] = time.Now()
		}
	}
}

// fetch dials a bridge over its transport, completes a client link
// handshake that proves the bridge line's fingerprint, and verifies the
// descriptor the bridge sent in it.
func (s *bridgeSet) fetch(ctx context.Context, b transports.Bridge) (*directory.RouterStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	lc, d, err := s.dial(ctx, b)
	if err != nil {
		return nil, err
	}
	lc.Close()
	var args []string
	for k, vs := range b.Args {
		for _, v := range vs {
			args = append(args, k+"="+v)
		}
	}
	return &directory.RouterStatus{
		Fingerprint: d.Fingerprint(), Published: d.Published, Identity: d.Identity,
		Onion: d.Onion, LinkKey: d.LinkKey,
		// Reach the bridge the way its line says, not by its other addresses.
		Transports: []directory.Transport{{Name: b.Transport, Addr: b.Addr, Args: args}},
		Roles:      d.Roles, Family: d.Family, Software: d.Software,
		Flags:    []directory.Flag{directory.FlagRunning, directory.FlagValid, directory.FlagGuard},
		Capacity: d.Capacity,
	}, nil
}

// dial opens a client link to b over its transport, proving the bridge
// line's fingerprint, and returns it with the verified descriptor the bridge
// sent in the handshake.
func (s *bridgeSet) dial(ctx context.Context, b transports.Bridge) (*link.Conn, *directory.Descriptor, error) {
	f, err := s.dialer.factory(ctx, b.Transport)
	if err != nil {
		return nil, nil, err
	}
	td, err := f.ParseArgs(b.Args)
	if err != nil {
		return nil, nil, fmt.Errorf("client: bridge %s: transport args: %w", b.Fingerprint, err)
	}
	conn, err := td.DialContext(ctx, b.Addr)
	if err != nil {
		return nil, nil, fmt.Errorf("client: bridge %s: dial: %w", b.Fingerprint, err)
	}
	lc, err := link.Dial(ctx, conn, link.DialConfig{ExpectFingerprint: b.Fingerprint})
	if err != nil {
		return nil, nil, fmt.Errorf("client: bridge %s: link: %w", b.Fingerprint, err)
	}
	raw := lc.PeerDescriptor()
	if raw == nil {
		lc.Close()
		return nil, nil, fmt.Errorf("client: bridge %s sent no descriptor (is it configured with role bridge?)", b.Fingerprint)
	}
	d, err := directory.ParseDescriptor(raw, time.Now())
	if err != nil {
		lc.Close()
		return nil, nil, fmt.Errorf("client: bridge %s: %w", b.Fingerprint, err)
	}
	if d.Fingerprint() != b.Fingerprint {
		lc.Close()
		return nil, nil, fmt.Errorf("client: bridge %s sent the descriptor of %s", b.Fingerprint, d.Fingerprint())
	}
	return lc, d, nil
}
