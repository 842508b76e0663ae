package relay

// The relay's descriptor (spec/04-directory.md §3, spec/09-relay-operation.md
// §6): built afresh for every upload from the bound listeners, the current
// and previous onion keys and a newly signed link certificate, so keys that
// rotated and certificates that near expiry are replaced by the next upload.

import (
	"time"

	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/relay/keys"
)

// Software is the version string relays publish.
const Software = "unfed-relay/0.1.0"

// minCertLifetime is the least lifetime of the link certificate in a
// descriptor; it is at least three publish intervals, so a descriptor is
// replaced long before its certificate expires.
const minCertLifetime = 7 * 24 * time.Hour

// descriptor builds the relay's descriptor as of now.
func (r *runner) descriptor(now time.Time) *directory.Descriptor {
	now = now.Truncate(time.Second)
	cur, prev := r.store.OnionKeys()
	life := max(minCertLifetime, 3*r.publishInterval())
	lk := r.store.Link().Public
	d := &directory.Descriptor{
		Nickname:      r.cfg.Nickname,
		Published:     now,
		Onion:         directory.OnionPublicOf(cur),
		LinkKey:       lk,
		LinkCert:      keys.CertifyLink(r.store.Identity(), lk, now.Add(life)),
		Roles:         r.st.roles,
		Capacity:      directory.Capacity{Sessions: r.cfg.Capacity.Sessions, TokensPerSec: r.cfg.Capacity.TokensPerSec},
		PricePerToken: r.cfg.PricePerToken,
		Family:        r.st.family,
		Software:      Software,
		Contact:       r.cfg.Contact,
	}
	if prev != nil {
		p := directory.OnionPublicOf(prev)
		d.PrevOnion = &p
	}
	for _, l := range r.listeners {
		t := l.advertised(r.cfg.OR.Address)
		if l.transport == "tcp" && r.cfg.Debug.AdvertiseTCP != "" {
			t.Addr = r.cfg.Debug.AdvertiseTCP
		}
		d.Transports = append(d.Transports, t)
	}
	if r.served != nil {
		if r.st.has(directory.RoleCompute) {
			d.Compute = &directory.ComputeInfo{Model: r.served.modelID,
				Layers: directory.LayerRange{First: r.cfg.Compute.First, Last: r.cfg.Compute.Last}}
		}
		// A party serves its stage [first, last) on shares as either side
		// (spec/10-confidential.md §7); a dealer deals any stage of the
		// model. Which relays pair up is the client's choice.
		if r.st.has(directory.RoleMPC) {
			d.MPC = &directory.MPCInfo{Model: r.served.modelID,
				Layers: directory.LayerRange{First: r.cfg.Compute.First, Last: r.cfg.Compute.Last}}
		}
		if r.st.has(directory.RoleDealer) {
			d.Dealer = &directory.DealerInfo{Model: r.served.modelID}
		}
		if r.st.has(directory.RoleVerifier) {
			d.Verifier = &directory.VerifierInfo{Model: r.served.modelID}
		}
	}
	return d
}

// signDescriptor is the Publisher's Sign function.
func (r *runner) signDescriptor(now time.Time) ([]byte, error) {
	return r.descriptor(now).Sign(r.store.Identity())
}

func (r *runner) publishInterval() time.Duration {
	if r.cfg.PublishInterval > 0 {
		return r.cfg.PublishInterval
	}
	return time.Hour
}
