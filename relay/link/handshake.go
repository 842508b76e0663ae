package link

import (
	"context"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync/atomic"
	"time"

	"github.com/flynn/noise"
	"github.com/unfed/unfed/relay/keys"
)

// Handshake selectors, the first byte a dialer sends (spec/01-link.md §3.1).
const (
	selIK = 0x01 // relay → relay, responder's link key known
	selXX = 0x02 // relay → relay, only the responder's fingerprint known
	selNK = 0x03 // client → guard, guard's link key known
	selNX = 0x04 // client → guard, only the guard's fingerprint known
)

// prologue is mixed into every handshake hash with the selector appended, so
// a selector changed on the wire fails the handshake.
const prologue = "unfed-link-v1"

// SupportedVersions are the link protocol versions this code speaks.
var SupportedVersions = []uint16{1}

var cipherSuite = noise.NewCipherSuite(noise.DH25519, noise.CipherAESGCM, noise.HashSHA256)

var (
	// ErrWrongIdentity is returned by Dial when the responder proved an
	// identity other than the one expected.
	ErrWrongIdentity = errors.New("link: peer has the wrong identity")
	// ErrNoCommonVersion is returned when the two sides share no link
	// protocol version.
	ErrNoCommonVersion = errors.New("link: no common link protocol version")
	// ErrHandshake wraps every other handshake failure.
	ErrHandshake = errors.New("link: handshake failed")
)

// Defaults for Options fields left zero.
const (
	DefaultHandshakeTimeout = 20 * time.Second
	DefaultKeepalive        = 60 * time.Second
	DefaultIdleTimeout      = 5 * time.Minute
	DefaultWriteTimeout     = 2 * time.Minute
	DefaultRekeyBytes       = 1 << 34
	certLifetime            = 24 * time.Hour
)

// Options are the settings both sides of a link share. The zero value means
// the defaults.
type Options struct {
	// Versions are the link protocol versions offered; nil means SupportedVersions.
	Versions []uint16
	// HandshakeTimeout bounds the whole handshake; 0 means 20 s.
	HandshakeTimeout time.Duration
	// Keepalive is how long we may stay silent before sending a keepalive
	// frame; 0 means 60 s, negative disables keepalives.
	Keepalive time.Duration
	// IdleTimeout closes a link that received nothing for this long; 0 means
	// 5 min, negative disables it.
	IdleTimeout time.Duration
	// WriteTimeout bounds one frame write; 0 means 2 min, negative disables it.
	WriteTimeout time.Duration
	// RekeyBytes turns the sending key after this many bytes; 0 means 16 GiB.
	RekeyBytes uint64
	// RekeyMessages turns the sending key after this many messages; 0 or more
	// than 2^32-1 means 2^32-1.
	RekeyMessages uint64
	// Metrics receives counters; nil counts nothing.
	Metrics *Metrics
	// Now is the clock for certificate checks; nil means time.Now.
	Now func() time.Time
}

func (o *Options) versions() []uint16 {
	if len(o.Versions) > 0 {
		return o.Versions
	}
	return SupportedVersions
}

func (o *Options) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

func (o *Options) connOptions() connOptions {
	pick := func(v, def time.Duration) time.Duration {
		switch {
		case v == 0:
			return def
		case v < 0:
			return 0
		}
		return v
	}
	co := connOptions{
		keepalive:     pick(o.Keepalive, DefaultKeepalive),
		idle:          pick(o.IdleTimeout, DefaultIdleTimeout),
		writeTimeout:  pick(o.WriteTimeout, DefaultWriteTimeout),
		rekeyBytes:    o.RekeyBytes,
		rekeyMessages: o.RekeyMessages,
	}
	if co.rekeyBytes == 0 {
		co.rekeyBytes = DefaultRekeyBytes
	}
	if co.rekeyMessages == 0 || co.rekeyMessages > maxMessagesPerKey {
		co.rekeyMessages = maxMessagesPerKey
	}
	if co.rekeyMessages < 2 {
		co.rekeyMessages = 2
	}
	return co
}

// DialConfig configures the dialing side of a link.
type DialConfig struct {
	// Identity is the dialing relay's key store; nil dials as a client, which
	// presents no identity.
	Identity *keys.Store
	// ExpectFingerprint is the identity the responder must prove; required.
	ExpectFingerprint keys.Fingerprint
	// ExpectLinkKey is the responder's Noise static key from its descriptor;
	// when set the handshake is IK (relay) or NK (client), otherwise XX or NX.
	ExpectLinkKey [32]byte
	Options
}

// ServerConfig configures the accepting side of a link.
type ServerConfig struct {
	// Store holds the relay's identity and link keys; required.
	Store *keys.Store
	// Descriptor, when set, returns this relay's signed descriptor, which is
	// sent to client dialers (NK, NX) in the handshake: bridges set it, so a
	// client holding only a bridge line learns the bridge's onion keys.
	Descriptor func() []byte
	Options
}

// localKeys are the keys one side authenticates with.
type localKeys struct {
	id   *keys.Identity
	link *keys.LinkKey
}

func storeKeys(s *keys.Store) *localKeys {
	if s == nil {
		return nil
	}
	return &localKeys{id: s.Identity(), link: s.Link()}
}

func (k *localKeys) dhKey() noise.DHKey {
	return noise.DHKey{Private: k.link.Private[:], Public: k.link.Public[:]}
}

func (k *localKeys) cert(now time.Time) []byte {
	return keys.CertifyLink(k.id, k.link.Public, now.Add(certLifetime))
}

// Dial runs the dialing side of the handshake over conn, which it closes on
// any failure. ctx and HandshakeTimeout bound the handshake only.
func Dial(ctx context.Context, conn net.Conn, cfg DialConfig) (*Conn, error) {
	return dial(ctx, conn, storeKeys(cfg.Identity), cfg)
}

func dial(ctx context.Context, conn net.Conn, local *localKeys, cfg DialConfig) (c *Conn, err error) {
	m := cfg.Metrics
	defer func() {
		if err != nil {
			conn.Close()
			m.handshake("dial", resultLabel(err))
		} else {
			m.handshake("dial", "ok")
		}
	}()
	if cfg.ExpectFingerprint.IsZero() {
		return nil, fmt.Errorf("%w: no expected fingerprint", ErrHandshake)
	}
	stop, hctx := guard(ctx, conn, cfg.HandshakeTimeout)
	defer stop()

	knowKey := cfg.ExpectLinkKey != [32]byte{}
	var sel byte
	var pattern noise.HandshakePattern
	switch {
	case local != nil && knowKey:
		sel, pattern = selIK, noise.HandshakeIK
	case local != nil:
		sel, pattern = selXX, noise.HandshakeXX
	case knowKey:
		sel, pattern = selNK, noise.HandshakeNK
	default:
		sel, pattern = selNX, noise.HandshakeNX
	}
	nc := noise.Config{
		CipherSuite: cipherSuite,
		Pattern:     pattern,
		Initiator:   true,
		Prologue:    append([]byte(prologue), sel),
	}
	if local != nil {
		nc.StaticKeypair = local.dhKey()
	}
	if knowKey {
		nc.PeerStatic = cfg.ExpectLinkKey[:]
	}
	hs, err := noise.NewHandshakeState(nc)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrHandshake, err)
	}
	now := cfg.now()
	ours := cfg.versions()
	p1 := payload{Versions: ours}
	if sel == selIK {
		p1.Cert = local.cert(now)
	}
	msg1, _, _, err := hs.WriteMessage(nil, p1.encode())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrHandshake, err)
	}
	if err := writeMsg(conn, []byte{sel}, msg1); err != nil {
		return nil, hctx.wrap(err)
	}
	msg2, err := readMsg(conn)
	if err != nil {
		return nil, hctx.wrap(err)
	}
	raw2, cs1, cs2, err := hs.ReadMessage(nil, msg2)
	if err != nil {
		return nil, fmt.Errorf("%w: message 2: %v", ErrHandshake, err)
	}
	p2, err := parsePayload(raw2)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	if err := checkCert(p2.Cert, hs.PeerStatic(), now, cfg.ExpectFingerprint); err != nil {
		return nil, err
	}
	if !p2.HasChosen || p2.Chosen == 0 {
		return nil, fmt.Errorf("%w: we offer %v, responder %v", ErrNoCommonVersion, ours, p2.Versions)
	}
	if !slices.Contains(ours, p2.Chosen) || p2.Chosen != chooseVersion(ours, p2.Versions) {
		return nil, fmt.Errorf("%w: responder chose version %d from %v", ErrHandshake, p2.Chosen, p2.Versions)
	}
	if sel == selXX {
		p3 := payload{Cert: local.cert(now)}
		var msg3 []byte
		msg3, cs1, cs2, err = hs.WriteMessage(nil, p3.encode())
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrHandshake, err)
		}
		if err := writeMsg(conn, nil, msg3); err != nil {
			return nil, hctx.wrap(err)
		}
	}
	if cs1 == nil || cs2 == nil {
		return nil, fmt.Errorf("%w: handshake did not complete", ErrHandshake)
	}
	if !stop() {
		return nil, hctx.wrap(net.ErrClosed)
	}
	lc := newConn(conn, cs1, cs2, cfg.connOptions(), m, nil)
	lc.peer, lc.isRelay, lc.version = cfg.ExpectFingerprint, true, p2.Chosen
	lc.peerDescriptor = p2.Descriptor
	if sel == selIK {
		// Key confirmation (spec/01-link.md §3.5): only a dialer holding the
		// ephemeral of message 1 can write a frame the responder decrypts,
		// which is what tells a live dialer from a replayed message 1.
		lc.wmu.Lock()
		err := lc.writeLocked(frameKeepalive, nil)
		lc.wmu.Unlock()
		if err != nil {
			lc.Close()
			return nil, fmt.Errorf("%w: key confirmation: %w", ErrHandshake, err)
		}
	}
	return lc, nil
}

// skipKeyConfirm, set only by tests, makes a responder treat an IK link as
// established without the dialer's confirmation frame: the replay the
// confirmation stops then succeeds (TestLinkHandshakeReplay's mutation).
var skipKeyConfirm bool

// Accept runs the accepting side of the handshake over conn, which it closes
// on any failure. It accepts relay (IK, XX) and client (NK, NX) dialers alike.
func Accept(ctx context.Context, conn net.Conn, cfg ServerConfig) (*Conn, error) {
	if cfg.Store == nil {
		conn.Close()
		return nil, fmt.Errorf("%w: no key store", ErrHandshake)
	}
	return accept(ctx, conn, storeKeys(cfg.Store), cfg, nil)
}

// accept is Accept with the responder's keys given directly; onClose, when
// set, runs once when an established link closes.
func accept(ctx context.Context, conn net.Conn, local *localKeys, cfg ServerConfig, onClose func()) (c *Conn, err error) {
	m := cfg.Metrics
	defer func() {
		if err != nil {
			conn.Close()
			m.handshake("accept", resultLabel(err))
		} else {
			m.handshake("accept", "ok")
		}
	}()
	stop, hctx := guard(ctx, conn, cfg.HandshakeTimeout)
	defer stop()

	var sel [1]byte
	if _, err := io.ReadFull(conn, sel[:]); err != nil {
		return nil, hctx.wrap(err)
	}
	var pattern noise.HandshakePattern
	switch sel[0] {
	case selIK:
		pattern = noise.HandshakeIK
	case selXX:
		pattern = noise.HandshakeXX
	case selNK:
		pattern = noise.HandshakeNK
	case selNX:
		pattern = noise.HandshakeNX
	default:
		return nil, fmt.Errorf("%w: unknown selector %#x", ErrHandshake, sel[0])
	}
	hs, err := noise.NewHandshakeState(noise.Config{
		CipherSuite:   cipherSuite,
		Pattern:       pattern,
		Initiator:     false,
		Prologue:      append([]byte(prologue), sel[0]),
		StaticKeypair: local.dhKey(),
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrHandshake, err)
	}
	msg1, err := readMsg(conn)
	if err != nil {
		return nil, hctx.wrap(err)
	}
	raw1, _, _, err := hs.ReadMessage(nil, msg1)
	if err != nil {
		return nil, fmt.Errorf("%w: message 1: %v", ErrHandshake, err)
	}
	p1, err := parsePayload(raw1)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	now := cfg.now()
	var peer keys.Fingerprint
	if sel[0] == selIK {
		if peer, err = peerCert(p1.Cert, hs.PeerStatic(), now); err != nil {
			return nil, err
		}
	}
	ours := cfg.versions()
	chosen := chooseVersion(ours, p1.Versions)
	p2 := payload{Versions: ours, Chosen: chosen, HasChosen: true, Cert: local.cert(now)}
	if cfg.Descriptor != nil && (sel[0] == selNK || sel[0] == selNX) {
		p2.Descriptor = cfg.Descriptor()
	}
	msg2, cs1, cs2, err := hs.WriteMessage(nil, p2.encode())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrHandshake, err)
	}
	if err := writeMsg(conn, nil, msg2); err != nil {
		return nil, hctx.wrap(err)
	}
	if chosen == 0 {
		return nil, fmt.Errorf("%w: we offer %v, dialer %v", ErrNoCommonVersion, ours, p1.Versions)
	}
	if sel[0] == selXX {
		msg3, err := readMsg(conn)
		if err != nil {
			return nil, hctx.wrap(err)
		}
		var raw3 []byte
		raw3, cs1, cs2, err = hs.ReadMessage(nil, msg3)
		if err != nil {
			return nil, fmt.Errorf("%w: message 3: %v", ErrHandshake, err)
		}
		p3, err := parsePayload(raw3)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrHandshake, err)
		}
		if peer, err = peerCert(p3.Cert, hs.PeerStatic(), now); err != nil {
			return nil, err
		}
	}
	if cs1 == nil || cs2 == nil {
		return nil, fmt.Errorf("%w: handshake did not complete", ErrHandshake)
	}
	// onClose belongs to an established link only: a link closed before
	// accept returns is released by accept's caller.
	var state atomic.Int32 // 0 handshaking, 1 established, 2 closed while handshaking
	lc := newConn(conn, cs2, cs1, cfg.connOptions(), m, func() {
		if !state.CompareAndSwap(0, 2) && onClose != nil {
			onClose()
		}
	})
	lc.peer, lc.isRelay, lc.version = peer, sel[0] == selIK || sel[0] == selXX, chosen
	if sel[0] == selIK && !skipKeyConfirm {
		// Message 1 of IK proves nothing about liveness: a recording of it
		// replays within the certificate's lifetime. The dialer's first
		// frame, under keys mixed with our fresh ephemeral, does (§3.5).
		typ, _, err := lc.readOne()
		if err == nil && typ != frameKeepalive {
			err = fmt.Errorf("first frame of type %#x, not keepalive", typ)
		}
		if err != nil {
			lc.closeWith(err)
			return nil, hctx.wrap(fmt.Errorf("key confirmation: %w", err))
		}
	}
	if !stop() || !state.CompareAndSwap(0, 1) {
		lc.closeWith(net.ErrClosed)
		return nil, hctx.wrap(net.ErrClosed)
	}
	return lc, nil
}

// checkCert verifies the responder's certificate: it must verify, certify
// the Noise static key the handshake used, and name the expected identity.
func checkCert(cert, static []byte, now time.Time, want keys.Fingerprint) error {
	lc, err := keys.ParseLinkCert(cert, now)
	if err != nil {
		return fmt.Errorf("%w: responder certificate: %w", ErrHandshake, err)
	}
	if subtle.ConstantTimeCompare(lc.LinkKey[:], static) != 1 {
		return fmt.Errorf("%w: certificate is for another link key", ErrWrongIdentity)
	}
	if lc.Fingerprint() != want {
		return fmt.Errorf("%w: got %s, want %s", ErrWrongIdentity, lc.Fingerprint(), want)
	}
	return nil
}

// peerCert verifies an initiating relay's certificate and returns its
// fingerprint.
func peerCert(cert, static []byte, now time.Time) (keys.Fingerprint, error) {
	lc, err := keys.ParseLinkCert(cert, now)
	if err != nil {
		return keys.Fingerprint{}, fmt.Errorf("%w: dialer certificate: %w", ErrHandshake, err)
	}
	if subtle.ConstantTimeCompare(lc.LinkKey[:], static) != 1 {
		return keys.Fingerprint{}, fmt.Errorf("%w: dialer certificate is for another link key", ErrHandshake)
	}
	return lc.Fingerprint(), nil
}

// writeMsg writes prefix || 2-byte length || msg in one Write.
func writeMsg(w io.Writer, prefix, msg []byte) error {
	if len(msg) > MaxWireFrame {
		return fmt.Errorf("handshake message of %d bytes", len(msg))
	}
	b := make([]byte, 0, len(prefix)+2+len(msg))
	b = append(b, prefix...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(msg)))
	b = append(b, msg...)
	_, err := w.Write(b)
	return err
}

// readMsg reads one 2-byte-length-prefixed handshake message.
func readMsg(r io.Reader) ([]byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	b := make([]byte, binary.BigEndian.Uint16(hdr[:]))
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return b, nil
}

// handshakeCtx remembers why a handshake was cut short.
type handshakeCtx struct{ ctx context.Context }

func (h handshakeCtx) wrap(err error) error {
	if cerr := h.ctx.Err(); cerr != nil {
		return fmt.Errorf("%w: %w", ErrHandshake, cerr)
	}
	return fmt.Errorf("%w: %w", ErrHandshake, err)
}

// guard closes conn when ctx ends or the handshake timeout passes; closing
// works on every transport, where deadlines do not (obfs4 conns refuse them).
// stop reports false when the guard already fired.
func guard(ctx context.Context, conn net.Conn, timeout time.Duration) (func() bool, handshakeCtx) {
	if timeout <= 0 {
		timeout = DefaultHandshakeTimeout
	}
	hctx, cancel := context.WithTimeout(ctx, timeout)
	stopClose := context.AfterFunc(hctx, func() { conn.Close() })
	return func() bool {
		ok := stopClose()
		cancel()
		return ok
	}, handshakeCtx{hctx}
}

func resultLabel(err error) string {
	switch {
	case errors.Is(err, ErrWrongIdentity):
		return "wrong_identity"
	case errors.Is(err, ErrNoCommonVersion):
		return "no_common_version"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	}
	return "error"
}
