package directory_test

import (
	"bytes"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/directory/dirtest"
	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/transports/onionaddr"
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
	r := newRelay(t, "full", directory.RoleGuard, directory.RoleCompute, directory.RoleMPC, directory.RoleDealer)
	r.Desc.Transports = append(r.Desc.Transports,
		directory.Transport{Name: "obfs4", Addr: "127.0.0.1:5001", Args: []string{"cert=AAAA", "iat-mode=0"}},
		directory.Transport{Name: "quic", Addr: "[::1]:5002"})
	r.Desc.Compute = &directory.ComputeInfo{Model: "stories260K", Layers: directory.LayerRange{First: 2, Last: 5}}
	r.Desc.MPC = &directory.MPCInfo{Model: "stories260K", Layers: directory.LayerRange{First: 0, Last: 3}}
	r.Desc.Dealer = &directory.DealerInfo{Model: "stories260K"}
	sibling := newRelay(t, "partner")
	r.Desc.Family = []keys.Fingerprint{sibling.Fingerprint()}
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
	if d.Compute == nil || d.Compute.Layers != (directory.LayerRange{First: 2, Last: 5}) ||
		d.MPC == nil || *d.MPC != (directory.MPCInfo{Model: "stories260K", Layers: directory.LayerRange{First: 0, Last: 3}}) ||
		d.Dealer == nil || d.Dealer.Model != "stories260K" {
		t.Errorf("compute/mpc/dealer = %+v %+v %+v", d.Compute, d.MPC, d.Dealer)
	}
	for _, line := range []string{"\nroles guard compute mpc dealer\n", "\nmpc stories260K 0 3\n", "\ndealer stories260K\n"} {
		if !bytes.Contains(b, []byte(line)) {
			t.Errorf("document lacks %q:\n%s", line[1:], b)
		}
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
		{"mpc role without line", func(d *directory.Descriptor) { d.Roles = append(d.Roles, directory.RoleMPC) }},
		{"mpc line without role", func(d *directory.Descriptor) {
			d.MPC = &directory.MPCInfo{Model: "m", Layers: directory.LayerRange{First: 0, Last: 1}}
		}},
		{"empty stage", func(d *directory.Descriptor) {
			d.Roles = append(d.Roles, directory.RoleMPC)
			d.MPC = &directory.MPCInfo{Model: "m", Layers: directory.LayerRange{First: 2, Last: 2}}
		}},
		{"negative stage", func(d *directory.Descriptor) {
			d.Roles = append(d.Roles, directory.RoleMPC)
			d.MPC = &directory.MPCInfo{Model: "m", Layers: directory.LayerRange{First: -1, Last: 2}}
		}},
		{"stage past 65535", func(d *directory.Descriptor) {
			d.Roles = append(d.Roles, directory.RoleMPC)
			d.MPC = &directory.MPCInfo{Model: "m", Layers: directory.LayerRange{First: 0, Last: 65536}}
		}},
		{"bad stage model", func(d *directory.Descriptor) {
			d.Roles = append(d.Roles, directory.RoleMPC)
			d.MPC = &directory.MPCInfo{Model: "a b", Layers: directory.LayerRange{First: 0, Last: 1}}
		}},
		{"dealer role without line", func(d *directory.Descriptor) { d.Roles = append(d.Roles, directory.RoleDealer) }},
		{"dealer line without role", func(d *directory.Descriptor) { d.Dealer = &directory.DealerInfo{Model: "m"} }},
		{"bad dealer model", func(d *directory.Descriptor) {
			d.Roles = append(d.Roles, directory.RoleDealer)
			d.Dealer = &directory.DealerInfo{Model: "-m"}
		}},
		{"verifier role without line", func(d *directory.Descriptor) { d.Roles = append(d.Roles, directory.RoleVerifier) }},
		{"verifier line without role", func(d *directory.Descriptor) { d.Verifier = &directory.VerifierInfo{Model: "m"} }},
		{"bad verifier model", func(d *directory.Descriptor) {
			d.Roles = append(d.Roles, directory.RoleVerifier)
			d.Verifier = &directory.VerifierInfo{Model: "a b"}
		}},
		{"no transports", func(d *directory.Descriptor) { d.Transports = nil }},
		{"bad address", func(d *directory.Descriptor) { d.Transports[0].Addr = "nowhere" }},
		{"DNS name", func(d *directory.Descriptor) { d.Transports[0].Addr = "relay.example.org:9001" }},
		{"unspecified address", func(d *directory.Descriptor) { d.Transports[0].Addr = "0.0.0.0:9001" }},
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

// resign replaces a descriptor's signature with a valid one by id over the
// (possibly edited) body, so that tests reach the checks behind the
// signature.
func resign(id *keys.Identity, doc []byte) []byte {
	body := doc[:bytes.Index(doc, []byte("router-sig-ed25519 "))]
	sig := id.Sign(append([]byte("unfed-descriptor-signature-v1"), body...))
	return append(bytes.Clone(body), "router-sig-ed25519 "+b64(sig)+"\n"...)
}

// TestDescriptorParseStrict feeds validly signed documents with edited
// stage, dealer and transport lines to the parser: the signature holds, so
// every rejection comes from the value checks.
func TestDescriptorParseStrict(t *testing.T) {
	r := fullRelay(t)
	good, err := r.Sign(t0)
	if err != nil {
		t.Fatal(err)
	}
	edit := func(old, new string) []byte {
		if !bytes.Contains(good, []byte(old)) {
			t.Fatalf("no %q in the document", old)
		}
		return resign(r.Identity, bytes.Replace(good, []byte(old), []byte(new), 1))
	}
	cases := []struct {
		name string
		doc  []byte
		want string // "" means accepted
	}{
		{"as signed", resign(r.Identity, good), ""},
		{"stage up to 65535", edit("mpc stories260K 0 3\n", "mpc stories260K 65534 65535\n"), ""},
		{"stage past 65535", edit("mpc stories260K 0 3\n", "mpc stories260K 0 65536\n"), "bad number"},
		{"empty stage", edit("mpc stories260K 0 3\n", "mpc stories260K 3 3\n"), "want 0 <= first < last <= 65535"},
		{"reversed stage", edit("mpc stories260K 0 3\n", "mpc stories260K 4 3\n"), "want 0 <= first < last"},
		{"negative first", edit("mpc stories260K 0 3\n", "mpc stories260K -1 3\n"), "bad number"},
		{"leading zero", edit("mpc stories260K 0 3\n", "mpc stories260K 0 03\n"), "bad number"},
		{"stage model", edit("mpc stories260K 0 3\n", "mpc .stories 0 3\n"), "bad mpc model"},
		{"stage arguments", edit("mpc stories260K 0 3\n", "mpc stories260K 0\n"), "want at least 3 arguments"},
		{"old party line", edit("mpc stories260K 0 3\n", "mpc A 0ACB4104B8DC87A9B3DB9090FA396309DE0DC44D stories260K\n"), "bad number"},
		{"stage twice", edit("mpc stories260K 0 3\n", "mpc stories260K 0 3\nmpc stories260K 3 5\n"), "appears twice"},
		{"mpc role without line", edit("mpc stories260K 0 3\n", ""), "the mpc role and the mpc line go together"},
		{"mpc line without role", edit("roles guard compute mpc dealer\n", "roles guard compute dealer\n"), "the mpc role and the mpc line go together"},
		{"dealer role without line", edit("dealer stories260K\n", ""), "the dealer role and the dealer line go together"},
		{"dealer line without role", edit("roles guard compute mpc dealer\n", "roles guard compute mpc\n"), "the dealer role and the dealer line go together"},
		{"dealer model", edit("dealer stories260K\n", "dealer stories/260K\n"), "bad dealer model"},
		{"dealer arguments", edit("dealer stories260K\n", "dealer\n"), "want at least 1 arguments"},
		{"dealer twice", edit("dealer stories260K\n", "dealer stories260K\ndealer other\n"), "appears twice"},
		{"DNS name", edit("tcp 127.0.0.1:5000\n", "tcp relay.example.org:5000\n"), "not an IP literal"},
		{"localhost", edit("tcp 127.0.0.1:5000\n", "tcp localhost:5000\n"), "not an IP literal"},
		{"onion transport", edit("tcp 127.0.0.1:5000\n", "tcp 127.0.0.1:5000\ntransport onion 2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion:9001\n"), ""},
		{"onion host on tcp", edit("tcp 127.0.0.1:5000\n", "tcp 2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion:5000\n"), "longer than 64 bytes"},
		{"IP on onion", edit("tcp 127.0.0.1:5000\n", "tcp 127.0.0.1:5000\ntransport onion 127.0.0.1:9001\n"), "needs a v3 onion address"},
		{"v2 onion", edit("tcp 127.0.0.1:5000\n", "tcp 127.0.0.1:5000\ntransport onion expyuzz4wqqyqhjn.onion:9001\n"), "needs a v3 onion address"},
		{"onion checksum", edit("tcp 127.0.0.1:5000\n", "tcp 127.0.0.1:5000\ntransport onion 2gzzxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion:9001\n"), "needs a v3 onion address"},
		{"IPv6 DNS", edit("quic [::1]:5002\n", "quic [relay.example.org]:5002\n"), "not an IP literal"},
		{"IPv6 zone", edit("quic [::1]:5002\n", "quic [fe80::1%eth0]:5002\n"), "not an IP literal"},
		{"bracketed IPv4", edit("tcp 127.0.0.1:5000\n", "tcp [127.0.0.1]:5000\n"), "not canonical"},
		{"unspecified", edit("tcp 127.0.0.1:5000\n", "tcp 0.0.0.0:5000\n"), "not a unicast address"},
		{"multicast", edit("tcp 127.0.0.1:5000\n", "tcp 224.0.0.1:5000\n"), "not a unicast address"},
		{"port zero", edit("tcp 127.0.0.1:5000\n", "tcp 127.0.0.1:0\n"), "1..65535"},
		{"port leading zero", edit("tcp 127.0.0.1:5000\n", "tcp 127.0.0.1:05000\n"), "1..65535"},
		{"no port", edit("tcp 127.0.0.1:5000\n", "tcp 127.0.0.1\n"), "not HOST:PORT"},
		{"public IPv4", edit("tcp 127.0.0.1:5000\n", "tcp 192.0.2.7:5000\n"), ""},
		{"public IPv6", edit("quic [::1]:5002\n", "quic [2001:db8::7]:5002\n"), ""},
	}
	for _, c := range cases {
		d, err := directory.ParseDescriptor(c.doc, t0)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: rejected: %v", c.name, err)
		case c.want == "" && (d.MPC == nil || d.Dealer == nil):
			t.Errorf("%s: mpc/dealer lost: %+v %+v", c.name, d.MPC, d.Dealer)
		case c.want != "" && (!errors.Is(err, directory.ErrBadDescriptor) || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: got %v, want ErrBadDescriptor mentioning %q", c.name, err, c.want)
		}
	}
}

// checkParsedDescriptor asserts what the parser guarantees of every
// descriptor it accepts.
func checkParsedDescriptor(t *testing.T, d *directory.Descriptor) {
	t.Helper()
	if m := d.MPC; m != nil {
		if !d.HasRole(directory.RoleMPC) || m.Model == "" || m.Layers.First < 0 || m.Layers.First >= m.Layers.Last || m.Layers.Last > directory.MaxStageLayer {
			t.Fatalf("accepted mpc line %+v (roles %v)", m, d.Roles)
		}
	} else if d.HasRole(directory.RoleMPC) {
		t.Fatal("accepted role mpc without an mpc line")
	}
	if (d.Dealer != nil) != d.HasRole(directory.RoleDealer) || d.Dealer != nil && d.Dealer.Model == "" {
		t.Fatalf("accepted dealer %+v with roles %v", d.Dealer, d.Roles)
	}
	for _, tr := range d.Transports {
		host, _, err := net.SplitHostPort(tr.Addr)
		if tr.Name == directory.OnionTransport {
			if _, oerr := onionaddr.Parse(host); err != nil || oerr != nil {
				t.Fatalf("accepted onion transport address %q", tr.Addr)
			}
			continue
		}
		if ip := net.ParseIP(host); err != nil || ip == nil || ip.IsUnspecified() {
			t.Fatalf("accepted transport address %q", tr.Addr)
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
	// Validly signed variants, so the fuzzer starts past the signature.
	for _, e := range [][2]string{
		{"mpc stories260K 0 3\n", "mpc stories260K 0 65535\n"},
		{"mpc stories260K 0 3\n", "mpc stories260K 3 3\n"},
		{"dealer stories260K\n", ""},
		{"tcp 127.0.0.1:5000\n", "tcp relay.example.org:5000\n"},
		{"quic [::1]:5002\n", "quic [2001:db8::1]:5002\n"},
		{"tcp 127.0.0.1:5000\n", "tcp 127.0.0.1:5000\ntransport onion 2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion:9001\n"},
	} {
		f.Add(resign(r.Identity, bytes.Replace(good, []byte(e[0]), []byte(e[1]), 1)))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := directory.ParseDescriptor(b, t0)
		if err != nil {
			return
		}
		checkParsedDescriptor(t, d)
		// Anything accepted carries a valid signature by its own identity,
		// so it re-parses identically.
		d2, err := directory.ParseDescriptor(d.Raw(), t0)
		if err != nil || d2.Fingerprint() != d.Fingerprint() {
			t.Fatalf("accepted descriptor does not re-parse: %v", err)
		}
	})
}
