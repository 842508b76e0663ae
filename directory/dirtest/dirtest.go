// Package dirtest holds fakes and builders for tests of the directory
// package and its users: a Prober whose answers a test controls, synthetic
// relays with real keys, and a deterministic randomness source for test
// vectors. Production code must not import it.
package dirtest

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/relay/keys"
)

// Prober is a fake directory.Measurer: every relay is reachable unless
// marked down, and measured at the weight set for it (not measured when
// none is). The zero value is ready to use.
type Prober struct {
	mu      sync.Mutex
	down    map[keys.Fingerprint]bool
	weights map[keys.Fingerprint]uint64
	hang    map[keys.Fingerprint]bool
}

// SetHang makes Measure of the relay wait until its context ends (a relay
// that takes the measurement's whole time), or stops that.
func (p *Prober) SetHang(fp keys.Fingerprint, hang bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.hang == nil {
		p.hang = map[keys.Fingerprint]bool{}
	}
	p.hang[fp] = hang
}

// SetWeight makes Measure report weight w (KiB/s) for the relay; 0 makes it
// unmeasured.
func (p *Prober) SetWeight(fp keys.Fingerprint, w uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.weights == nil {
		p.weights = map[keys.Fingerprint]uint64{}
	}
	p.weights[fp] = w
}

// Measure implements directory.Measurer: w KiB received in one second.
func (p *Prober) Measure(ctx context.Context, d *directory.Descriptor) (directory.Measurement, error) {
	p.mu.Lock()
	hang := p.hang[d.Fingerprint()]
	p.mu.Unlock()
	if hang {
		<-ctx.Done()
		return directory.Measurement{}, ctx.Err()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	w := p.weights[d.Fingerprint()]
	if w == 0 {
		return directory.Measurement{}, errors.New("dirtest: relay not measured")
	}
	return directory.Measurement{Bytes: int64(w) * 1024, Elapsed: time.Second}, ctx.Err()
}

// SetDown marks a relay unreachable (or reachable again).
func (p *Prober) SetDown(fp keys.Fingerprint, down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down == nil {
		p.down = map[keys.Fingerprint]bool{}
	}
	p.down[fp] = down
}

// Probe implements directory.Prober.
func (p *Prober) Probe(ctx context.Context, d *directory.Descriptor) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down[d.Fingerprint()] {
		return errors.New("dirtest: relay marked down")
	}
	return ctx.Err()
}

// Rand returns an endless deterministic byte stream derived from seed:
// SHA-256(seed || counter) blocks.
func Rand(seed string) io.Reader { return &detRand{seed: seed} }

type detRand struct {
	seed string
	ctr  uint64
	buf  []byte
}

func (r *detRand) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(r.buf) == 0 {
			var c [8]byte
			binary.BigEndian.PutUint64(c[:], r.ctr)
			r.ctr++
			h := sha256.Sum256(append([]byte(r.seed), c[:]...))
			r.buf = h[:]
		}
		k := copy(p[n:], r.buf)
		r.buf = r.buf[k:]
		n += k
	}
	return n, nil
}

// Relay is a synthetic relay with real keys and a descriptor to fill in.
type Relay struct {
	Identity *keys.Identity
	Desc     directory.Descriptor
}

// NewRelay makes a relay with keys drawn from rnd (crypto/rand when nil),
// one tcp transport at addr, the given roles, capacity 10 sessions and 100
// tokens/s. Callers set Compute, MPC and Dealer for those roles.
func NewRelay(rnd io.Reader, addr string, created time.Time, roles ...directory.Role) (*Relay, error) {
	id, err := keys.NewIdentity(rnd)
	if err != nil {
		return nil, err
	}
	onion, err := keys.NewOnionKey(rnd, created)
	if err != nil {
		return nil, err
	}
	link, err := keys.NewLinkKey(rnd)
	if err != nil {
		return nil, err
	}
	r := &Relay{Identity: id}
	r.Desc = directory.Descriptor{
		Nickname:      "relay",
		Onion:         directory.OnionPublicOf(onion),
		LinkKey:       link.Public,
		LinkCert:      keys.CertifyLink(id, link.Public, created.Add(365*24*time.Hour)),
		Transports:    []directory.Transport{{Name: "tcp", Addr: addr}},
		Roles:         roles,
		Capacity:      directory.Capacity{Sessions: 10, TokensPerSec: 100},
		PricePerToken: 5,
		Software:      "unfed-relay/0.1.0",
	}
	return r, nil
}

// Fingerprint returns the relay's fingerprint.
func (r *Relay) Fingerprint() keys.Fingerprint { return r.Identity.Fingerprint() }

// Sign signs the descriptor with published time now.
func (r *Relay) Sign(now time.Time) ([]byte, error) {
	r.Desc.Published = now
	return r.Desc.Sign(r.Identity)
}
