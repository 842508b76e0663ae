package directory_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/directory/dirtest"
	"github.com/unfed/unfed/relay/keys"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func newRelay(t testing.TB, seed string, roles ...directory.Role) *dirtest.Relay {
	t.Helper()
	r, err := dirtest.NewRelay(dirtest.Rand(seed), "127.0.0.1:5000", t0.Add(-time.Hour), roles...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func fullRelay(t testing.TB) *dirtest.Relay {
	r := newRelay(t, "full", directory.RoleGuard, directory.RoleCompute, directory.RoleMPC)
	r.Desc.Transports = append(r.Desc.Transports,
		directory.Transport{Name: "obfs4", Addr: "127.0.0.1:5001", Args: []string{"cert=AAAA", "iat-mode=0"}},
		directory.Transport{Name: "quic", Addr: "[::1]:5002"})
	r.Desc.Compute = &directory.ComputeInfo{Model: "stories260K", Layers: directory.LayerRange{First: 2, Last: 5}}
	partner := newRelay(t, "partner")
	r.Desc.MPC = &directory.MPCInfo{Party: "A", Partner: partner.Fingerprint(), Model: "stories260K"}
	r.Desc.Family = []keys.Fingerprint{partner.Fingerprint()}
	r.Desc.Contact = "ops at example dot org"
	prev := r.Desc.Onion
	prev.X25519[0] ^= 1
	r.Desc.PrevOnion = &prev
	return r
}

func TestDescriptorRoundTrip(t *testing.T) {
	r := fullRelay(t)
	b, err := r.Sign(t0)
	if err != nil {
		t.Fatal(err)
	}
	d, err := directory.ParseDescriptor(b, t0.Add(time.Minute))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, b)
	}
	if d.Fingerprint() != r.Fingerprint() || !d.Published.Equal(t0) || !bytes.Equal(d.Raw(), b) {
		t.Errorf("fingerprint/published/raw differ")
	}
	if len(d.Transports) != 3 || d.Transports[1].Args[0] != "cert=AAAA" || d.Transports[2].Addr != "[::1]:5002" {
		t.Errorf("transports = %+v", d.Transports)
	}
	if d.Compute == nil || d.Compute.Layers != (directory.LayerRange{First: 2, Last: 5}) || d.MPC == nil || d.MPC.Party != "A" {
		t.Errorf("compute/mpc = %+v %+v", d.Compute, d.MPC)
	}
	if d.PrevOnion == nil || d.PrevOnion.X25519 != r.Desc.PrevOnion.X25519 || d.Onion.X25519 != r.Desc.Onion.X25519 ||
		!bytes.Equal(d.Onion.XWing, r.Desc.Onion.XWing) {
		t.Errorf("onion keys differ")
	}
	if d.Contact != r.Desc.Contact || d.Software != "unfed-relay/0.1.0" || d.Capacity.TokensPerSec != 100 || d.PricePerToken != 5 {
		t.Errorf("contact/software/capacity/price differ: %+v", d)
	}
	// Unknown keywords are ignored, but they are covered by the signature:
	// a relay that adds one still verifies; anyone else adding one does not.
	withUnknown := bytes.Replace(b, []byte("software "), []byte("x-future-thing 1 2\nsoftware "), 1)
	if _, err := directory.ParseDescriptor(withUnknown, t0); !errors.Is(err, directory.ErrBadDescriptor) {
		t.Errorf("inserted line after signing: got %v, want rejection", err)
	}
}

func TestDescriptorRejected(t *testing.T) {
	r := fullRelay(t)
	good, err := r.Sign(t0)
	if err != nil {
		t.Fatal(err)
	}
	other := newRelay(t, "other", directory.RoleGuard)
	otherDoc, err := other.Sign(t0)
	if err != nil {
		t.Fatal(err)
	}
	replaceLine := func(b []byte, kw string, with []byte) []byte {
		lines := bytes.SplitAfter(b, []byte("\n"))
		for i, l := range lines {
			if bytes.HasPrefix(l, []byte(kw+" ")) {
				lines[i] = with
			}
		}
		return bytes.Join(lines, nil)
	}
	lineOf := func(b []byte, kw string) []byte {
		for _, l := range bytes.SplitAfter(b, []byte("\n")) {
			if bytes.HasPrefix(l, []byte(kw+" ")) {
				return l
			}
		}
		t.Fatalf("no %s line", kw)
		return nil
	}
	cases := []struct {
		name string
		doc  []byte
		now  time.Time
		want string
	}{
		{"forged price", bytes.Replace(good, []byte("price-per-token 5\n"), []byte("price-per-token 6\n"), 1), t0, "signature does not verify"},
		{"other identity", replaceLine(replaceLine(good, "identity-ed25519", lineOf(otherDoc, "identity-ed25519")), "fingerprint", lineOf(otherDoc, "fingerprint")), t0, "signature does not verify"},
		{"fingerprint mismatch", replaceLine(good, "fingerprint", lineOf(otherDoc, "fingerprint")), t0, "fingerprint does not match"},
		{"stale", good, t0.Add(directory.DescriptorMaxAge + time.Second), "stale"},
		{"future", good, t0.Add(-time.Hour), "in the future"},
		{"other signature", replaceLine(good, "router-sig-ed25519", lineOf(otherDoc, "router-sig-ed25519")), t0, "signature does not verify"},
		{"truncated", good[:len(good)/2], t0, ""},
		{"no signature", good[:bytes.Index(good, []byte("router-sig-ed25519"))], t0, "router-sig-ed25519"},
		{"too large", append(bytes.Repeat([]byte("x\n"), directory.MaxDescriptorSize), good...), t0, "limit"},
	}
	for _, c := range cases {
		_, err := directory.ParseDescriptor(c.doc, c.now)
		if !errors.Is(err, directory.ErrBadDescriptor) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want ErrBadDescriptor mentioning %q", c.name, err, c.want)
		}
	}
}

func TestDescriptorSignValidates(t *testing.T) {
	mut := []struct {
		name string
		f    func(d *directory.Descriptor)
	}{
		{"compute role without line", func(d *directory.Descriptor) { d.Roles = append(d.Roles, directory.RoleCompute) }},
		{"empty range", func(d *directory.Descriptor) {
			d.Roles = append(d.Roles, directory.RoleCompute)
			d.Compute = &directory.ComputeInfo{Model: "m", Layers: directory.LayerRange{First: 3, Last: 3}}
		}},
		{"bad party", func(d *directory.Descriptor) {
			d.Roles = append(d.Roles, directory.RoleMPC)
			d.MPC = &directory.MPCInfo{Party: "C", Partner: keys.Fingerprint{1}, Model: "m"}
		}},
		{"no transports", func(d *directory.Descriptor) { d.Transports = nil }},
		{"bad address", func(d *directory.Descriptor) { d.Transports[0].Addr = "nowhere" }},
		{"no roles", func(d *directory.Descriptor) { d.Roles = nil }},
		{"link cert for another key", func(d *directory.Descriptor) { d.LinkKey[0] ^= 1 }},
		{"space in software", func(d *directory.Descriptor) { d.Software = "a b" }},
		{"huge capacity", func(d *directory.Descriptor) { d.Capacity.Sessions = 1 << 40 }},
	}
	for _, m := range mut {
		r := newRelay(t, "v", directory.RoleGuard)
		m.f(&r.Desc)
		if _, err := r.Sign(t0); !errors.Is(err, directory.ErrBadDescriptor) {
			t.Errorf("%s: Sign gave %v, want ErrBadDescriptor", m.name, err)
		}
	}
}

func FuzzParseDescriptor(f *testing.F) {
	r := fullRelay(f)
	good, err := r.Sign(t0)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)-10])
	f.Add(bytes.Replace(good, []byte("roles "), []byte("roles x "), 1))
	f.Add([]byte("unfed-descriptor 1\nrouter-sig-ed25519 AAAA\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := directory.ParseDescriptor(b, t0)
		if err != nil {
			return
		}
		// Anything accepted carries a valid signature by its own identity,
		// so it re-parses identically.
		d2, err := directory.ParseDescriptor(d.Raw(), t0)
		if err != nil || d2.Fingerprint() != d.Fingerprint() {
			t.Fatalf("accepted descriptor does not re-parse: %v", err)
		}
	})
}
