package directory

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cloudflare/circl/kem/xwing"
	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/unfed/unfed/directory/doc"
	"github.com/unfed/unfed/relay/keys"
)

// statusParser is the item-by-item state of parseStatus. Unknown keywords
// are ignored everywhere before the footer (spec §2.3); known ones are
// checked strictly, including canonical order, so that two documents with
// the same meaning have the same bytes.
type statusParser struct {
	s     *statusDoc
	seen  map[string]bool
	model *Model        // model whose shard lines are being read
	cur   *RouterStatus // entry being read
	curKW map[string]bool
}

const maxDelaySeconds = 24 * 3600

func (p *statusParser) header(it doc.Item) error {
	s, a := p.s, it.Args
	switch it.Keyword {
	case "dir-source", "model", "shard", "mint-key":
	default:
		if p.seen[it.Keyword] {
			return errors.New("appears twice")
		}
		p.seen[it.Keyword] = true
	}
	if it.Keyword != "shard" {
		if err := p.finishModel(); err != nil {
			return err
		}
	}
	var err error
	switch it.Keyword {
	case "vote-status":
		if len(a) < 1 || a[0] != "vote" && a[0] != "consensus" {
			return errors.New("want vote or consensus")
		}
		s.kind = a[0]
	case "consensus-methods", "consensus-method":
		if len(a) < 1 || it.Keyword == "consensus-method" && len(a) != 1 || len(a) > 32 {
			return errors.New("bad method list")
		}
		for _, m := range a {
			v, err := parseUint(m, 1<<16)
			if err != nil || len(s.methods) > 0 && int(v) <= s.methods[len(s.methods)-1] {
				return fmt.Errorf("bad or unsorted method %q", clip(m))
			}
			s.methods = append(s.methods, int(v))
		}
	case "published", "valid-after", "fresh-until", "valid-until":
		t, err := parseTimeArgs(a)
		if err != nil {
			return err
		}
		switch it.Keyword {
		case "published":
			s.published = t
		case "valid-after":
			s.validAfter = t
		case "fresh-until":
			s.freshUntil = t
		default:
			s.validUntil = t
		}
	case "voting-delay":
		if len(a) < 2 {
			return errors.New("want VOTE DIST seconds")
		}
		v, err1 := parseUint(a[0], maxDelaySeconds)
		d, err2 := parseUint(a[1], maxDelaySeconds)
		if err = errors.Join(err1, err2); err == nil {
			s.voteDelay, s.distDelay = time.Duration(v)*time.Second, time.Duration(d)*time.Second
		}
	case "known-flags":
		for _, f := range a {
			if !doc.ValidKeyword(f) || len(s.knownFlags) > 0 && Flag(f) <= s.knownFlags[len(s.knownFlags)-1] {
				return fmt.Errorf("bad or unsorted flag %q", clip(f))
			}
			s.knownFlags = append(s.knownFlags, Flag(f))
		}
		if len(s.knownFlags) > 64 {
			return errors.New("too many flags")
		}
	case "params":
		if len(a) > maxParams {
			return errors.New("too many parameters")
		}
		last := ""
		for _, kv := range a {
			k, v, err := parseKV(kv)
			if err != nil {
				return err
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || strconv.FormatInt(n, 10) != v || k <= last {
				return fmt.Errorf("bad or unsorted parameter %q", clip(kv))
			}
			s.params[k], last = n, k
		}
	case "dir-source":
		if len(a) < 3 || !validName(a[0]) || !validAddr(a[2]) {
			return errors.New("want NAME FINGERPRINT HOST:PORT")
		}
		fp, err := parseFP(a[1])
		if err != nil {
			return err
		}
		if n := len(s.sources); n > 0 && compareFP(s.sources[n-1].Fingerprint, fp) >= 0 || n >= maxSignatures {
			return errors.New("unsorted, repeated or too many")
		}
		s.sources = append(s.sources, DirSource{Name: a[0], Fingerprint: fp, Address: a[2]})
	case "mint-key":
		err = p.mintKey(a)
	case "model":
		if len(a) < 4 || !validName(a[0]) || !validName(a[1]) || len(a[3]) != 64 || !isLowerHex(a[3]) {
			return errors.New("want ID ARCH LAYERS HASHROOT(64 hex)")
		}
		n, err := parseUint(a[2], maxLayers)
		if err != nil || n == 0 {
			return fmt.Errorf("bad layer count %q", clip(a[2]))
		}
		if k := len(s.models); k > 0 && s.models[k-1].ID >= a[0] || k >= maxModels {
			return errors.New("unsorted, repeated or too many models")
		}
		m := Model{ID: a[0], Architecture: a[1], Layers: int(n), TensorHashRoot: a[3]}
		if len(a) >= 5 {
			if !ValidModelName(a[4]) {
				return fmt.Errorf("bad model name %q", clip(a[4]))
			}
			for _, o := range s.models {
				if strings.EqualFold(o.Name, a[4]) {
					return fmt.Errorf("model name %q repeated", clip(a[4]))
				}
			}
			m.Name = a[4]
		}
		s.models = append(s.models, m)
		p.model = &s.models[len(s.models)-1]
	case "shard":
		if p.model == nil || len(a) < 2 || len(p.model.Shards) >= maxShards {
			return errors.New("shard without a model, or too many")
		}
		f, err1 := parseUint(a[0], maxLayers)
		l, err2 := parseUint(a[1], maxLayers)
		if err := errors.Join(err1, err2); err != nil {
			return err
		}
		p.model.Shards = append(p.model.Shards, LayerRange{int(f), int(l)})
	}
	return err
}

// finishModel checks that the model being read has well-formed shards:
// sorted, non-empty, and tiling [0, layers) without gaps or overlaps.
func (p *statusParser) finishModel() error {
	m := p.model
	p.model = nil
	if m == nil {
		return nil
	}
	if err := checkShards(m); err != nil {
		return fmt.Errorf("model %s: %v", m.ID, err)
	}
	return nil
}

func checkShards(m *Model) error {
	next := 0
	for _, sh := range m.Shards {
		if sh.First != next || sh.Last <= sh.First {
			return fmt.Errorf("shard [%d,%d) does not continue at layer %d", sh.First, sh.Last, next)
		}
		next = sh.Last
	}
	if next != m.Layers {
		return fmt.Errorf("shards cover [0,%d), want [0,%d)", next, m.Layers)
	}
	return nil
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func (p *statusParser) router(it doc.Item) error {
	a := it.Args
	if it.Keyword == "r" {
		if err := p.finishRouter(); err != nil {
			return err
		}
		if len(a) < 3 {
			return errors.New("want FINGERPRINT PUBLISHED")
		}
		fp, err := parseFP(a[0])
		if err != nil {
			return err
		}
		pub, err := parseTimeArgs(a[1:])
		if err != nil {
			return err
		}
		if n := len(p.s.relays); n > 0 && compareFP(p.s.relays[n-1].Fingerprint, fp) >= 0 {
			return errors.New("entries not sorted by fingerprint, or repeated")
		}
		p.s.relays = append(p.s.relays, RouterStatus{Fingerprint: fp, Published: pub})
		p.cur = &p.s.relays[len(p.s.relays)-1]
		p.curKW = map[string]bool{}
		return nil
	}
	r := p.cur
	if it.Keyword != "t" {
		if p.curKW[it.Keyword] {
			return errors.New("appears twice in one entry")
		}
		p.curKW[it.Keyword] = true
	}
	need := func(n int) error {
		if len(a) < n {
			return fmt.Errorf("want at least %d arguments", n)
		}
		return nil
	}
	var err error
	switch it.Keyword {
	case "id":
		if err = need(1); err == nil {
			r.Identity, err = parseB64(a[0], ed25519.PublicKeySize)
		}
	case "n":
		if err = need(1); err == nil {
			if !validName(a[0]) {
				return errors.New("bad nickname")
			}
			r.Nickname = a[0]
		}
	case "onion":
		if err = need(2); err != nil {
			return err
		}
		if r.Onion.X25519, err = parseKey32(a[0]); err != nil {
			return err
		}
		r.Onion.XWing, err = parseB64(a[1], xwing.PublicKeySize)
	case "link":
		if err = need(1); err == nil {
			r.LinkKey, err = parseKey32(a[0])
		}
	case "t":
		if err = need(2); err != nil {
			return err
		}
		if !validName(a[0]) || len(r.Transports) >= maxTransports || len(a) > 2+maxTransportArgs {
			return errors.New("bad transport, or too many")
		}
		if err := checkRelayAddr(a[0], a[1]); err != nil {
			return err
		}
		r.Transports = append(r.Transports, Transport{Name: a[0], Addr: a[1], Args: slices.Clone(a[2:])})
	case "roles":
		for _, role := range a {
			if !validName(role) || len(r.Roles) > 0 && Role(role) <= r.Roles[len(r.Roles)-1] || len(r.Roles) >= 16 {
				return fmt.Errorf("bad or unsorted role %q", clip(role))
			}
			r.Roles = append(r.Roles, Role(role))
		}
	case "compute":
		if err = need(3); err != nil {
			return err
		}
		first, err1 := parseUint(a[1], maxLayers)
		last, err2 := parseUint(a[2], maxLayers)
		if err = errors.Join(err1, err2); err != nil {
			return err
		}
		if !validName(a[0]) || first >= last {
			return errors.New("bad model or layer range")
		}
		r.Compute = &ComputeInfo{Model: a[0], Layers: LayerRange{int(first), int(last)}}
	case "mpc":
		if err = need(3); err != nil {
			return err
		}
		lr, err := parseStageRange(a[1], a[2])
		if err != nil {
			return err
		}
		m := &MPCInfo{Model: a[0], Layers: lr}
		if err := checkStage(m); err != nil {
			return err
		}
		r.MPC = m
	case "dealer":
		if err = need(1); err != nil {
			return err
		}
		if !validName(a[0]) {
			return fmt.Errorf("bad dealer model %q", clip(a[0]))
		}
		r.Dealer = &DealerInfo{Model: a[0]}
	case "verifier":
		if err = need(1); err != nil {
			return err
		}
		if !validName(a[0]) {
			return fmt.Errorf("bad verifier model %q", clip(a[0]))
		}
		r.Verifier = &VerifierInfo{Model: a[0]}
	case "family":
		if len(a) > maxFamily {
			return errors.New("family too large")
		}
		for _, s := range a {
			f, err := parseFP(s)
			if err != nil {
				return err
			}
			r.Family = append(r.Family, f)
		}
	case "v":
		if err = need(1); err == nil {
			r.Software = a[0]
		}
	case "s":
		for _, f := range a {
			if !slices.Contains(p.s.knownFlags, Flag(f)) || len(r.Flags) > 0 && Flag(f) <= r.Flags[len(r.Flags)-1] {
				return fmt.Errorf("unknown, unsorted or repeated flag %q", clip(f))
			}
			r.Flags = append(r.Flags, Flag(f))
		}
	case "w":
		if err = need(3); err != nil {
			return err
		}
		var e1, e2, e3 error
		r.Capacity.Sessions, e1 = parseUint(a[0], maxSessions)
		r.Capacity.TokensPerSec, e2 = parseUint(a[1], maxTokensPerSec)
		r.PricePerToken, e3 = parseUint(a[2], maxPrice)
		if err = errors.Join(e1, e2, e3); err != nil {
			return err
		}
		err = weightArgs(r, a[3:])
	}
	return err
}

// weightArgs parses the keyword arguments after the three numbers of a w
// line (spec §5.1): Measured=N (votes), Weight=N and Unmeasured=1
// (consensuses), each at most once and in that order. Other arguments are
// ignored (§2.3); finishRouter checks which belong to the document.
func weightArgs(r *RouterStatus, args []string) error {
	last := 0
	for _, arg := range args {
		k, v, _ := strings.Cut(arg, "=")
		var rank int
		switch k {
		case "Measured":
			rank = 1
		case "Weight":
			rank = 2
		case "Unmeasured":
			rank = 3
		default:
			continue
		}
		if rank <= last {
			return fmt.Errorf("%s repeated or out of order (Measured, Weight, Unmeasured)", k)
		}
		last = rank
		switch k {
		case "Unmeasured":
			if v != "1" {
				return fmt.Errorf("want Unmeasured=1, got %q", clip(arg))
			}
			r.Unmeasured = true
		default:
			n, err := parseUint(v, MaxWeight)
			if err != nil || n == 0 {
				return fmt.Errorf("bad %s %q (1..%d)", k, clip(v), uint64(MaxWeight))
			}
			if k == "Measured" {
				r.Measured = n
			} else {
				r.Weight = n
			}
		}
	}
	return nil
}

// finishRouter checks that the entry being read is complete and consistent.
func (p *statusParser) finishRouter() error {
	r := p.cur
	p.cur = nil
	if r == nil {
		return nil
	}
	for _, kw := range []string{"id", "onion", "link", "t", "roles", "s", "w"} {
		if !p.curKW[kw] && !(kw == "t" && len(r.Transports) > 0) {
			return fmt.Errorf("entry %s: missing %q", r.Fingerprint, kw)
		}
	}
	if keys.FingerprintOf(r.Identity) != r.Fingerprint {
		return fmt.Errorf("entry %s: fingerprint does not match the identity key", r.Fingerprint)
	}
	if r.HasRole(RoleCompute) != (r.Compute != nil) || r.HasRole(RoleMPC) != (r.MPC != nil) || r.HasRole(RoleDealer) != (r.Dealer != nil) ||
		(r.Verifier != nil && !r.HasRole(RoleVerifier)) {
		return fmt.Errorf("entry %s: roles and compute/mpc/dealer/verifier lines disagree", r.Fingerprint)
	}
	// Which weight arguments the document carries (spec §5.1).
	switch {
	case p.s.kind == "vote" && (r.Weight != 0 || r.Unmeasured):
		return fmt.Errorf("entry %s: Weight and Unmeasured belong in a consensus, not a vote", r.Fingerprint)
	case p.s.kind == "consensus" && r.Measured != 0:
		return fmt.Errorf("entry %s: Measured belongs in a vote, not a consensus", r.Fingerprint)
	case r.Unmeasured && r.Weight == 0:
		return fmt.Errorf("entry %s: Unmeasured without a Weight", r.Fingerprint)
	case p.s.kind == "consensus" && p.s.methods[0] >= WeightsMethod && r.Weight == 0:
		return fmt.Errorf("entry %s: a method-%d consensus needs a Weight on every w line", r.Fingerprint, p.s.methods[0])
	case p.s.kind == "consensus" && p.s.methods[0] < WeightsMethod && r.Weight != 0:
		return fmt.Errorf("entry %s: Weight in a method-%d consensus", r.Fingerprint, p.s.methods[0])
	}
	return nil
}

func (p *statusParser) signature(it doc.Item) error {
	if it.Keyword != "directory-signature" {
		return errors.New("only signatures may follow the footer")
	}
	a := it.Args
	if len(a) < 2 || len(p.s.sigs) >= maxSignatures {
		return errors.New("want ALG FINGERPRINT [SIGNATURE], or too many signatures")
	}
	fp, err := parseFP(a[1])
	if err != nil {
		return err
	}
	sig := Signature{Alg: a[0], Authority: fp}
	switch a[0] {
	case SigEd25519:
		if len(a) < 3 || it.Object != nil {
			return errors.New("ed25519 signature goes on the line")
		}
		if sig.Sig, err = parseB64(a[2], ed25519.SignatureSize); err != nil {
			return err
		}
	case SigMLDSA65:
		if it.Object == nil || it.Object.Tag != "SIGNATURE" || len(it.Object.Data) != mldsa65.SignatureSize {
			return fmt.Errorf("mldsa65 signature wants a SIGNATURE object of %d bytes", mldsa65.SignatureSize)
		}
		sig.Sig = it.Object.Data
	case SigEd25519Cert:
		if it.Object == nil || it.Object.Tag != "SIGNATURE" || len(it.Object.Data) != authCertLen+ed25519.SignatureSize {
			return fmt.Errorf("ed25519-cert signature wants a SIGNATURE object of %d bytes", authCertLen+ed25519.SignatureSize)
		}
		sig.Sig = it.Object.Data
	default:
		// Unknown algorithms are skipped: a newer authority may add one.
		return nil
	}
	if n := len(p.s.sigs); n > 0 {
		prev := p.s.sigs[n-1]
		if c := compareFP(prev.Authority, fp); c > 0 || c == 0 && prev.Alg >= sig.Alg {
			return errors.New("signatures not sorted, or repeated")
		}
	}
	p.s.sigs = append(p.s.sigs, sig)
	return nil
}
