package directory

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cloudflare/circl/kem/xwing"
	"github.com/unfed/unfed/directory/doc"
	"github.com/unfed/unfed/relay/keys"
)

// Relay descriptors (spec/04-directory.md §3): what a relay says about itself,
// signed with its Ed25519 identity key.

// Role is something a relay offers to do.
type Role string

// The roles a relay may advertise.
const (
	RoleGuard   Role = "guard"
	RoleCompute Role = "compute"
	RoleMPC     Role = "mpc"
	RoleDealer  Role = "dealer"
	RoleBridge  Role = "bridge"
	// RoleVerifier re-executes tickets clients submit
	// (spec/11-verification.md §3.5).
	RoleVerifier Role = "verifier"
)

var knownRoles = []Role{RoleBridge, RoleCompute, RoleDealer, RoleGuard, RoleMPC, RoleVerifier}

// Transport is one address at which a relay accepts links.
type Transport struct {
	// Name is the transport: tcp, quic, obfs4, or a managed transport's name.
	Name string
	// Addr is host:port.
	Addr string
	// Args are the transport's key=value arguments (obfs4: cert=..., iat-mode=...).
	Args []string
}

// LayerRange is the half-open range [First, Last) of a model's layers.
type LayerRange struct{ First, Last int }

// ComputeInfo describes what a compute relay runs.
type ComputeInfo struct {
	Model  string
	Layers LayerRange
}

// MPCInfo describes what a party relay (role mpc) serves in confidential
// circuits (spec/10-confidential.md §7): one stage of a model, the layer range
// [First, Last), on secret shares, as either party. Which relay of a stage is
// A and which is B is the client's choice; there are no declared partners.
type MPCInfo struct {
	Model  string
	Layers LayerRange
}

// DealerInfo describes what a dealer relay (role dealer) serves: the
// correlated randomness of any stage of the model.
type DealerInfo struct {
	Model string
}

// VerifierInfo describes what a verifier relay (role verifier) checks:
// tickets of any layer range of the model.
type VerifierInfo struct {
	Model string
}

// Capacity is what a relay says it can carry.
type Capacity struct {
	Sessions     uint64
	TokensPerSec uint64
}

// OnionPublic is the public half of an onion key: X25519 and X-Wing.
type OnionPublic struct {
	X25519 [32]byte
	XWing  []byte
}

// OnionPublicOf returns the public half of k.
func OnionPublicOf(k *keys.OnionKey) OnionPublic {
	return OnionPublic{X25519: k.Public, XWing: slices.Clone(k.XWingPublic)}
}

// Descriptor is a relay descriptor. Build one, call Sign; or obtain one from
// ParseDescriptor, which verifies it.
type Descriptor struct {
	Nickname  string
	Identity  ed25519.PublicKey
	Published time.Time
	Onion     OnionPublic
	// PrevOnion is the onion key the relay rotated away from, still accepted
	// during its grace period (spec README §5.3); nil outside it.
	PrevOnion  *OnionPublic
	LinkKey    [32]byte
	LinkCert   []byte
	Transports []Transport
	Roles      []Role
	Compute    *ComputeInfo
	MPC        *MPCInfo
	Dealer     *DealerInfo
	Verifier   *VerifierInfo
	Capacity   Capacity
	// PricePerToken is in micro-credits.
	PricePerToken uint64
	Family        []keys.Fingerprint
	Software      string
	Contact       string

	raw []byte
}

// Limits of descriptor contents (spec §3.3).
const (
	MaxDescriptorSize = 64 << 10
	maxTransports     = 8
	maxTransportArgs  = 8
	maxFamily         = 16
	maxContact        = 256
	maxLayers         = 1 << 16
	// MaxStageLayer bounds the layer range of an mpc line: SETUP carries
	// first and last in 16 bits (spec/03-compute.md §3.2).
	MaxStageLayer   = 1<<16 - 1
	maxSessions     = 1 << 20
	maxTokensPerSec = 1 << 30
	maxPrice        = 1 << 40
	// DescriptorMaxAge is how old a descriptor ParseDescriptor still accepts;
	// authorities apply their own, usually shorter, limit on top.
	DescriptorMaxAge = 48 * time.Hour
	// MaxClockSkew is how far in the future a published time may lie.
	MaxClockSkew = 5 * time.Minute
	// MaxDescriptorSkew is how far ahead of an authority's clock a
	// descriptor's published time may be (spec §3.3): relays keep their
	// clocks close, and a descriptor from the future would otherwise
	// outrank the relay's next ones.
	MaxDescriptorSkew = time.Minute
)

const descSigContext = "unfed-descriptor-signature-v1"

// ErrBadDescriptor is wrapped by every descriptor rejection.
var ErrBadDescriptor = errors.New("directory: bad descriptor")

// Fingerprint returns the relay's fingerprint.
func (d *Descriptor) Fingerprint() keys.Fingerprint { return keys.FingerprintOf(d.Identity) }

// Raw returns the signed document.
func (d *Descriptor) Raw() []byte { return d.raw }

// HasRole reports whether the relay advertises r.
func (d *Descriptor) HasRole(r Role) bool { return slices.Contains(d.Roles, r) }

// Sign sets the descriptor's identity to id, encodes it, signs it and returns
// the document. The published time is taken as set (truncated to seconds).
func (d *Descriptor) Sign(id *keys.Identity) ([]byte, error) {
	d.Identity = slices.Clone(id.Public)
	d.Published = d.Published.UTC().Truncate(time.Second)
	if err := d.validate(d.Published, false); err != nil {
		return nil, err
	}
	body, err := d.encodeBody()
	if err != nil {
		return nil, err
	}
	sig := id.Sign(append([]byte(descSigContext), body...))
	var w doc.Writer
	w.Item("router-sig-ed25519", fmtB64(sig))
	tail, err := w.Bytes()
	if err != nil {
		return nil, err
	}
	d.raw = append(body, tail...)
	return slices.Clone(d.raw), nil
}

func (d *Descriptor) encodeBody() ([]byte, error) {
	var w doc.Writer
	w.Item("unfed-descriptor", "1")
	if d.Nickname != "" {
		w.Item("nickname", d.Nickname)
	}
	w.Item("fingerprint", d.Fingerprint().String())
	w.Item("identity-ed25519", fmtB64(d.Identity))
	w.Item("published", timeArgs(d.Published)...)
	w.Item("onion-key", fmtB64(d.Onion.X25519[:]), fmtB64(d.Onion.XWing))
	if d.PrevOnion != nil {
		w.Item("onion-key-previous", fmtB64(d.PrevOnion.X25519[:]), fmtB64(d.PrevOnion.XWing))
	}
	w.Item("link-key", fmtB64(d.LinkKey[:]))
	w.Item("link-cert", fmtB64(d.LinkCert))
	for _, t := range d.Transports {
		w.Item("transport", append([]string{t.Name, t.Addr}, t.Args...)...)
	}
	w.Item("roles", rolesArgs(d.Roles)...)
	if c := d.Compute; c != nil {
		w.Item("compute", c.Model, fmtUint(uint64(c.Layers.First)), fmtUint(uint64(c.Layers.Last)))
	}
	if m := d.MPC; m != nil {
		w.Item("mpc", m.Model, fmtUint(uint64(m.Layers.First)), fmtUint(uint64(m.Layers.Last)))
	}
	if dl := d.Dealer; dl != nil {
		w.Item("dealer", dl.Model)
	}
	if v := d.Verifier; v != nil {
		w.Item("verifier", v.Model)
	}
	w.Item("capacity", fmtUint(d.Capacity.Sessions), fmtUint(d.Capacity.TokensPerSec))
	w.Item("price-per-token", fmtUint(d.PricePerToken))
	if len(d.Family) > 0 {
		w.Item("family", fpArgs(d.Family)...)
	}
	if d.Software != "" {
		w.Item("software", d.Software)
	}
	if d.Contact != "" {
		w.Item("contact", strings.Fields(d.Contact)...)
	}
	return w.Bytes()
}

func rolesArgs(rs []Role) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r)
	}
	return out
}

func fpArgs(fps []keys.Fingerprint) []string {
	out := make([]string, len(fps))
	for i, f := range fps {
		out[i] = f.String()
	}
	return out
}

var descLimits = doc.Limits{MaxSize: MaxDescriptorSize, MaxLine: 8192, MaxItems: 64, MaxArgs: 32, MaxObject: 1}

// ParseDescriptor parses a descriptor and verifies it: signature by the
// identity key it names, link certificate, freshness (published no more than
// DescriptorMaxAge before now and no more than MaxClockSkew after it) and
// sane values. Every rejection wraps ErrBadDescriptor and says why.
func ParseDescriptor(b []byte, now time.Time) (*Descriptor, error) {
	return parseDescriptor(b, now, true)
}

func parseDescriptor(b []byte, now time.Time, checkTime bool) (*Descriptor, error) {
	d, err := decodeDescriptor(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadDescriptor, err)
	}
	if err := d.validate(now, checkTime); err != nil {
		return nil, err
	}
	return d, nil
}

func decodeDescriptor(b []byte) (*Descriptor, error) {
	items, err := doc.Parse(b, descLimits)
	if err != nil {
		return nil, err
	}
	if items[0].Keyword != "unfed-descriptor" || len(items[0].Args) < 1 {
		return nil, errors.New("does not start with \"unfed-descriptor\"")
	}
	if items[0].Args[0] != "1" {
		return nil, fmt.Errorf("unsupported descriptor version %q", clip(items[0].Args[0]))
	}
	last := items[len(items)-1]
	if last.Keyword != "router-sig-ed25519" || len(last.Args) != 1 {
		return nil, errors.New("does not end with \"router-sig-ed25519 SIGNATURE\"")
	}
	d := &Descriptor{raw: slices.Clone(b)}
	var fp keys.Fingerprint
	seen := map[string]bool{}
	for _, it := range items[1 : len(items)-1] {
		if it.Keyword != "transport" {
			if seen[it.Keyword] {
				return nil, fmt.Errorf("line %d: %q appears twice", it.Line, it.Keyword)
			}
			seen[it.Keyword] = true
		}
		if err := d.decodeItem(it, &fp); err != nil {
			return nil, fmt.Errorf("line %d: %s: %v", it.Line, it.Keyword, err)
		}
	}
	for _, kw := range []string{"fingerprint", "identity-ed25519", "published", "onion-key", "link-key", "link-cert", "roles", "capacity", "price-per-token"} {
		if !seen[kw] {
			return nil, fmt.Errorf("missing %q", kw)
		}
	}
	if fp != d.Fingerprint() {
		return nil, errors.New("fingerprint does not match the identity key")
	}
	sig, err := parseB64(last.Args[0], ed25519.SignatureSize)
	if err != nil {
		return nil, fmt.Errorf("signature: %v", err)
	}
	msg := append([]byte(descSigContext), b[:last.Offset]...)
	if !keys.Verify(d.Identity, msg, sig) {
		return nil, errors.New("signature does not verify")
	}
	return d, nil
}

func (d *Descriptor) decodeItem(it doc.Item, fp *keys.Fingerprint) error {
	a := it.Args
	need := func(n int) error {
		if len(a) < n {
			return fmt.Errorf("want at least %d arguments, got %d", n, len(a))
		}
		return nil
	}
	var err error
	switch it.Keyword {
	case "nickname":
		if err = need(1); err == nil {
			d.Nickname = a[0]
		}
	case "fingerprint":
		if err = need(1); err == nil {
			*fp, err = parseFP(a[0])
		}
	case "identity-ed25519":
		if err = need(1); err == nil {
			d.Identity, err = parseB64(a[0], ed25519.PublicKeySize)
		}
	case "published":
		d.Published, err = parseTimeArgs(a)
	case "onion-key", "onion-key-previous":
		if err = need(2); err != nil {
			return err
		}
		var o OnionPublic
		if o.X25519, err = parseKey32(a[0]); err != nil {
			return err
		}
		if o.XWing, err = parseB64(a[1], xwing.PublicKeySize); err != nil {
			return err
		}
		if it.Keyword == "onion-key" {
			d.Onion = o
		} else {
			d.PrevOnion = &o
		}
	case "link-key":
		if err = need(1); err == nil {
			d.LinkKey, err = parseKey32(a[0])
		}
	case "link-cert":
		if err = need(1); err == nil {
			d.LinkCert, err = parseB64(a[0], keys.LinkCertLen)
		}
	case "transport":
		if err = need(2); err == nil {
			d.Transports = append(d.Transports, Transport{Name: a[0], Addr: a[1], Args: slices.Clone(a[2:])})
		}
	case "roles":
		for _, r := range a {
			// Unknown roles are ignored (forward compatibility, spec §3.2).
			if slices.Contains(knownRoles, Role(r)) {
				d.Roles = append(d.Roles, Role(r))
			}
		}
	case "compute":
		if err = need(3); err != nil {
			return err
		}
		c := &ComputeInfo{Model: a[0]}
		first, err1 := parseUint(a[1], maxLayers)
		last, err2 := parseUint(a[2], maxLayers)
		if err = errors.Join(err1, err2); err != nil {
			return err
		}
		c.Layers = LayerRange{int(first), int(last)}
		d.Compute = c
	case "mpc":
		if err = need(3); err != nil {
			return err
		}
		var r LayerRange
		if r, err = parseStageRange(a[1], a[2]); err == nil {
			d.MPC = &MPCInfo{Model: a[0], Layers: r}
		}
	case "dealer":
		if err = need(1); err == nil {
			d.Dealer = &DealerInfo{Model: a[0]}
		}
	case "verifier":
		if err = need(1); err == nil {
			d.Verifier = &VerifierInfo{Model: a[0]}
		}
	case "capacity":
		if err = need(2); err != nil {
			return err
		}
		var err1, err2 error
		d.Capacity.Sessions, err1 = parseUint(a[0], maxSessions)
		d.Capacity.TokensPerSec, err2 = parseUint(a[1], maxTokensPerSec)
		err = errors.Join(err1, err2)
	case "price-per-token":
		if err = need(1); err == nil {
			d.PricePerToken, err = parseUint(a[0], maxPrice)
		}
	case "family":
		for _, s := range a {
			f, err := parseFP(s)
			if err != nil {
				return err
			}
			d.Family = append(d.Family, f)
		}
	case "software":
		if err = need(1); err == nil {
			d.Software = a[0]
		}
	case "contact":
		d.Contact = strings.Join(a, " ")
	}
	return err
}

// parseStageRange parses the FIRST LAST arguments of an mpc line.
func parseStageRange(first, last string) (LayerRange, error) {
	f, err1 := parseUint(first, MaxStageLayer)
	l, err2 := parseUint(last, MaxStageLayer)
	if err := errors.Join(err1, err2); err != nil {
		return LayerRange{}, err
	}
	return LayerRange{int(f), int(l)}, nil
}

// checkStage checks an mpc line's values: a model id and a layer range with
// 0 <= first < last <= MaxStageLayer.
func checkStage(m *MPCInfo) error {
	if !validName(m.Model) {
		return fmt.Errorf("bad mpc model %q", clip(m.Model))
	}
	if r := m.Layers; r.First < 0 || r.First >= r.Last || r.Last > MaxStageLayer {
		return fmt.Errorf("bad mpc layer range [%d,%d): want 0 <= first < last <= %d", r.First, r.Last, MaxStageLayer)
	}
	return nil
}

// validate checks values; now is used for the freshness window and the link
// certificate's expiry when checkTime is set.
func (d *Descriptor) validate(now time.Time, checkTime bool) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadDescriptor, fmt.Sprintf(format, args...))
	}
	if len(d.Identity) != ed25519.PublicKeySize {
		return bad("identity key is %d bytes", len(d.Identity))
	}
	if d.Nickname != "" && !validName(d.Nickname) {
		return bad("bad nickname %q", clip(d.Nickname))
	}
	if checkTime {
		if d.Published.Before(now.Add(-DescriptorMaxAge)) {
			return bad("stale: published %s, more than %s before now", fmtTime(d.Published), DescriptorMaxAge)
		}
		if d.Published.After(now.Add(MaxClockSkew)) {
			return bad("published %s is in the future", fmtTime(d.Published))
		}
	}
	if len(d.Onion.XWing) != xwing.PublicKeySize || d.PrevOnion != nil && len(d.PrevOnion.XWing) != xwing.PublicKeySize {
		return bad("X-Wing onion key is not %d bytes", xwing.PublicKeySize)
	}
	certNow := now
	if !checkTime {
		certNow = time.Unix(0, 0)
	}
	cert, err := keys.ParseLinkCert(d.LinkCert, certNow)
	if err != nil {
		return bad("link certificate: %v", err)
	}
	if !cert.Identity.Equal(d.Identity) || cert.LinkKey != d.LinkKey {
		return bad("link certificate does not bind this link key to this identity")
	}
	if len(d.Transports) == 0 || len(d.Transports) > maxTransports {
		return bad("%d transports, want 1..%d", len(d.Transports), maxTransports)
	}
	for _, t := range d.Transports {
		if !validName(t.Name) || len(t.Args) > maxTransportArgs {
			return bad("bad transport %q %q", clip(t.Name), clip(t.Addr))
		}
		if err := checkRelayAddr(t.Name, t.Addr); err != nil {
			return bad("transport %s: %v", t.Name, err)
		}
		for _, a := range t.Args {
			if _, _, err := parseKV(a); err != nil || !doc.ValidArg(a) {
				return bad("transport %s: bad argument %q", t.Name, clip(a))
			}
		}
	}
	if len(d.Roles) == 0 {
		return bad("no known roles")
	}
	for i, r := range d.Roles {
		if !slices.Contains(knownRoles, r) || slices.Contains(d.Roles[:i], r) {
			return bad("bad or repeated role %q", clip(string(r)))
		}
	}
	if d.HasRole(RoleCompute) != (d.Compute != nil) {
		return bad("the compute role and the compute line go together")
	}
	if c := d.Compute; c != nil {
		if !validName(c.Model) || c.Layers.First < 0 || c.Layers.First >= c.Layers.Last || c.Layers.Last > maxLayers {
			return bad("bad compute model %q or layer range [%d,%d)", clip(c.Model), c.Layers.First, c.Layers.Last)
		}
	}
	if d.HasRole(RoleMPC) != (d.MPC != nil) {
		return bad("the mpc role and the mpc line go together")
	}
	if m := d.MPC; m != nil {
		if err := checkStage(m); err != nil {
			return bad("%v", err)
		}
	}
	if d.HasRole(RoleDealer) != (d.Dealer != nil) {
		return bad("the dealer role and the dealer line go together")
	}
	if dl := d.Dealer; dl != nil && !validName(dl.Model) {
		return bad("bad dealer model %q", clip(dl.Model))
	}
	if d.HasRole(RoleVerifier) != (d.Verifier != nil) {
		return bad("the verifier role and the verifier line go together")
	}
	if v := d.Verifier; v != nil && !validName(v.Model) {
		return bad("bad verifier model %q", clip(v.Model))
	}
	if d.Capacity.Sessions > maxSessions || d.Capacity.TokensPerSec > maxTokensPerSec || d.PricePerToken > maxPrice {
		return bad("capacity or price out of range")
	}
	if len(d.Family) > maxFamily {
		return bad("family of %d, limit %d", len(d.Family), maxFamily)
	}
	if d.Software != "" && !doc.ValidArg(d.Software) || len(d.Software) > 64 {
		return bad("bad software version")
	}
	if len(d.Contact) > maxContact || d.Contact != strings.Join(strings.Fields(d.Contact), " ") {
		return bad("contact longer than %d or not single-spaced", maxContact)
	}
	for i := 0; i < len(d.Contact); i++ {
		if c := d.Contact[i]; c < 0x20 || c > 0x7e {
			return bad("contact is not printable ASCII")
		}
	}
	return nil
}
