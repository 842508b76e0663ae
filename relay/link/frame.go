package link

// Data path (spec/01-link.md §5). Sending: WriteFrame → wmu held → rekey if
// due → type||body encrypted into wbuf after its 2-byte length → one Write on
// the transport (WriteFrames: several frames sealed in turn into wbuf, one
// Write per maxCoalesced bytes; the bytes on the wire are the same). Receiving (one reader): 2-byte length → ciphertext → decrypt
// in place → DATA returned, KEEPALIVE dropped, REKEY turns the receiving key.
// wmu guards send, wbuf and the send counters; the receive side is
// owned by the single reader. lastRead and lastWrite feed the keepalive timer.

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flynn/noise"
	"github.com/unfed/unfed/relay/keys"
)

// Frame layout: a 2-byte big-endian length L, then L bytes of AES-256-GCM
// ciphertext (16-byte tag included) of type(1) || body.
const (
	// MaxWireFrame is the largest L: one Noise transport message.
	MaxWireFrame = 65535
	tagLen       = 16
	// MaxPayload is the largest body WriteFrame accepts.
	MaxPayload = MaxWireFrame - tagLen - 1
	minWire    = tagLen + 1
	// readBufferSize batches reads of small frames; larger ones bypass it.
	readBufferSize = 16 << 10
)

// Frame types (spec/01-link.md §5.2).
const (
	frameData      = 0x00
	frameKeepalive = 0x01
	frameRekey     = 0x02
)

// maxMessagesPerKey is the hard bound on messages under one key in either
// direction: a sender rekeys before reaching it, a receiver that sees more
// closes the link.
const maxMessagesPerKey = 1<<32 - 1

var (
	// ErrBadFrame is returned by ReadFrame when a frame does not decode; the
	// link is closed.
	ErrBadFrame = errors.New("link: bad frame")
	// ErrFrameTooLarge is returned by WriteFrame for a body over MaxPayload.
	ErrFrameTooLarge = errors.New("link: frame too large")
	// ErrIdleTimeout is the reason a link closed after hearing nothing for
	// the idle timeout.
	ErrIdleTimeout = errors.New("link: idle timeout")
)

// Conn is an established link. ReadFrame is for one reader; WriteFrame and
// Close are safe for concurrent use.
type Conn struct {
	conn net.Conn
	peer keys.Fingerprint
	// peerDescriptor is what a bridge sent in the handshake (dialer side).
	peerDescriptor []byte
	isRelay        bool
	version        uint16
	opts           connOptions
	metrics        *Metrics
	onClose        func()
	closed         chan struct{}
	once           sync.Once
	closeErr       error // set before closed is closed

	wmu       sync.Mutex
	send      *noise.CipherState
	wbuf      []byte // grows to the largest frame sent
	sentMsgs  uint64
	sentBytes uint64
	werr      error

	br       *bufio.Reader
	recv     *noise.CipherState
	rbuf     []byte // grows to the largest frame received
	recvMsgs uint64

	lastRead  atomic.Int64
	lastWrite atomic.Int64
}

// connOptions are the timers and thresholds of an established link.
type connOptions struct {
	keepalive     time.Duration
	idle          time.Duration
	writeTimeout  time.Duration
	rekeyBytes    uint64
	rekeyMessages uint64
}

func newConn(c net.Conn, send, recv *noise.CipherState, o connOptions, m *Metrics, onClose func()) *Conn {
	lc := &Conn{
		conn:    c,
		opts:    o,
		metrics: m,
		onClose: onClose,
		closed:  make(chan struct{}),
		send:    send,
		recv:    recv,
		br:      bufio.NewReaderSize(c, readBufferSize),
	}
	now := time.Now().UnixNano()
	lc.lastRead.Store(now)
	lc.lastWrite.Store(now)
	m.openDelta(1)
	if o.keepalive > 0 || o.idle > 0 {
		go lc.timers()
	}
	return lc
}

// Peer returns the peer's identity fingerprint and whether it is a relay; a
// client peer has no identity (zero fingerprint, false).
func (c *Conn) Peer() (keys.Fingerprint, bool) { return c.peer, c.isRelay }

// Version returns the negotiated link protocol version.
func (c *Conn) Version() uint16 { return c.version }

// LocalAddr returns the transport's local address.
func (c *Conn) LocalAddr() net.Addr { return c.conn.LocalAddr() }

// RemoteAddr returns the transport's remote address. Do not log it for
// client links.
func (c *Conn) RemoteAddr() net.Addr { return c.conn.RemoteAddr() }

// Done is closed when the link has closed.
func (c *Conn) Done() <-chan struct{} { return c.closed }

// Close closes the link and its transport connection. Pending writes and
// reads fail; nothing is flushed.
func (c *Conn) Close() error {
	c.closeWith(net.ErrClosed)
	return nil
}

func (c *Conn) closeWith(err error) {
	c.once.Do(func() {
		c.closeErr = err
		close(c.closed)
		c.conn.Close()
		c.metrics.openDelta(-1)
		if c.onClose != nil {
			c.onClose()
		}
	})
}

// cause returns why the link closed, or err when it has not.
func (c *Conn) cause(err error) error {
	select {
	case <-c.closed:
		if c.closeErr != nil && !errors.Is(c.closeErr, net.ErrClosed) {
			return c.closeErr
		}
	default:
	}
	return err
}

// WriteFrame sends p as one DATA frame. p may be reused when it returns.
func (c *Conn) WriteFrame(p []byte) error {
	if len(p) > MaxPayload {
		return fmt.Errorf("%w: %d bytes, max %d", ErrFrameTooLarge, len(p), MaxPayload)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeLocked(frameData, p)
}

func (c *Conn) writeLocked(typ byte, body []byte) error {
	if c.werr != nil {
		return c.werr
	}
	out, err := c.sealFrames(c.wbuf[:0], typ, body)
	c.wbuf = out[:0]
	if err != nil {
		return err
	}
	return c.flush(out)
}

// sealFrames appends to dst the frame of typ and body, sealed, preceded by
// a REKEY frame when the key is due to change (the REKEY frame is the last
// message under a key, so a key carries at most rekeyMessages messages),
// and counts them as sent.
func (c *Conn) sealFrames(dst []byte, typ byte, body []byte) ([]byte, error) {
	if typ != frameRekey && (c.sentMsgs+2 > c.opts.rekeyMessages || c.sentBytes >= c.opts.rekeyBytes) {
		var err error
		if dst, err = c.seal(dst, frameRekey, nil); err != nil {
			return dst, err
		}
		c.send.Rekey()
		c.sentMsgs, c.sentBytes = 0, 0
		c.metrics.rekey()
	}
	return c.seal(dst, typ, body)
}

// seal appends one sealed frame to dst: its 2-byte length, then type||body
// encrypted in place.
func (c *Conn) seal(dst []byte, typ byte, body []byte) ([]byte, error) {
	start := len(dst)
	need := 2 + 1 + len(body) + tagLen
	dst = slices.Grow(dst, need)
	w := dst[start : start+need]
	w[2] = typ
	copy(w[3:], body)
	out, err := c.send.Encrypt(w[:2], nil, w[2:3+len(body)])
	if err != nil {
		c.werr = fmt.Errorf("link: encrypt: %w", err)
		c.closeWith(c.werr)
		return dst[:start], c.werr
	}
	binary.BigEndian.PutUint16(out, uint16(len(out)-2))
	c.sentMsgs++
	c.sentBytes += uint64(len(out))
	c.metrics.bytesOut(len(out))
	return dst[:start+len(out)], nil
}

// flush writes sealed frames to the connection in one write.
func (c *Conn) flush(out []byte) error {
	if c.opts.writeTimeout > 0 {
		_ = c.conn.SetWriteDeadline(time.Now().Add(c.opts.writeTimeout))
	}
	if _, err := c.conn.Write(out); err != nil {
		// A partial write leaves the peer's decryptor out of step: the link
		// is unusable from here on.
		c.werr = c.cause(fmt.Errorf("link: write: %w", err))
		c.closeWith(c.werr)
		return c.werr
	}
	c.lastWrite.Store(time.Now().UnixNano())
	return nil
}

// maxCoalesced bounds the bytes WriteFrames gathers into one write.
const maxCoalesced = 64 << 10

// WriteFrames sends each of ps as one DATA frame, in order, as WriteFrame
// would, but gathers them into as few writes to the connection as fit
// maxCoalesced: a relay passing on a queue of cells makes one system call,
// and its peer one wake-up, instead of one per cell. Nothing is sent if any
// p is too large. The ps may be reused when it returns.
func (c *Conn) WriteFrames(ps [][]byte) error {
	for _, p := range ps {
		if len(p) > MaxPayload {
			return fmt.Errorf("%w: %d bytes, max %d", ErrFrameTooLarge, len(p), MaxPayload)
		}
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return c.werr
	}
	out := c.wbuf[:0]
	defer func() { c.wbuf = out[:0] }()
	for i, p := range ps {
		var err error
		if out, err = c.sealFrames(out, frameData, p); err != nil {
			return err
		}
		if len(out) >= maxCoalesced || i == len(ps)-1 {
			if err := c.flush(out); err != nil {
				return err
			}
			out = out[:0]
		}
	}
	return nil
}

// ReadFrame returns the next DATA frame's body in a new slice. Keepalive and
// rekey frames are handled inside. A frame that fails to decode closes the
// link and returns an error wrapping ErrBadFrame.
func (c *Conn) ReadFrame() ([]byte, error) {
	for {
		typ, body, err := c.readOne()
		if err != nil {
			return nil, err
		}
		if typ == frameData {
			return append([]byte(nil), body...), nil
		}
	}
}

// ReadFrameAlloc is ReadFrame with the body copied into alloc(n), n its
// length, instead of a new slice (a caller that recycles its frames keeps
// them warm in the cache). alloc returns a slice of length n, or nil for a
// new one.
func (c *Conn) ReadFrameAlloc(alloc func(n int) []byte) ([]byte, error) {
	for {
		typ, body, err := c.readOne()
		if err != nil {
			return nil, err
		}
		if typ != frameData {
			continue
		}
		if p := alloc(len(body)); len(p) == len(body) {
			copy(p, body)
			return p, nil
		}
		return append([]byte(nil), body...), nil
	}
}

// readOne reads and decrypts one frame. body aliases c.rbuf.
func (c *Conn) readOne() (byte, []byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
		return 0, nil, c.readFailed(err)
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	if n < minWire {
		return 0, nil, c.bad("short", fmt.Errorf("%w: length %d below %d", ErrBadFrame, n, minWire))
	}
	if len(c.rbuf) < n {
		c.rbuf = make([]byte, n)
	}
	ct := c.rbuf[:n]
	if _, err := io.ReadFull(c.br, ct); err != nil {
		return 0, nil, c.readFailed(err)
	}
	if c.recvMsgs >= maxMessagesPerKey {
		return 0, nil, c.bad("no_rekey", fmt.Errorf("%w: peer did not rekey", ErrBadFrame))
	}
	pt, err := c.recv.Decrypt(ct[:0], nil, ct)
	if err != nil {
		return 0, nil, c.bad("decrypt", fmt.Errorf("%w: decrypt: %v", ErrBadFrame, err))
	}
	c.recvMsgs++
	c.metrics.bytesIn(2 + n)
	c.lastRead.Store(time.Now().UnixNano())
	switch pt[0] {
	case frameData, frameKeepalive:
		return pt[0], pt[1:], nil
	case frameRekey:
		if len(pt) != 1 {
			return 0, nil, c.bad("rekey_body", fmt.Errorf("%w: rekey frame with a body", ErrBadFrame))
		}
		c.recv.Rekey()
		c.recvMsgs = 0
		return frameRekey, nil, nil
	default:
		return 0, nil, c.bad("type", fmt.Errorf("%w: unknown type %#x", ErrBadFrame, pt[0]))
	}
}

// readFailed closes the link after a transport read error: a link that lost
// its byte stream cannot resume.
func (c *Conn) readFailed(err error) error {
	err = c.cause(fmt.Errorf("link: read: %w", err))
	c.closeWith(err)
	return err
}

func (c *Conn) bad(reason string, err error) error {
	c.metrics.badFrame(reason)
	c.closeWith(err)
	return err
}

// timers sends keepalives when we have been quiet and closes the link when
// the peer has been.
func (c *Conn) timers() {
	period := c.opts.keepalive
	if period <= 0 || (c.opts.idle > 0 && c.opts.idle < period) {
		period = c.opts.idle
	}
	period /= 2
	if period < 5*time.Millisecond {
		period = 5 * time.Millisecond
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-c.closed:
			return
		case now := <-t.C:
			ns := now.UnixNano()
			if c.opts.idle > 0 && time.Duration(ns-c.lastRead.Load()) >= c.opts.idle {
				c.closeWith(ErrIdleTimeout)
				return
			}
			if c.opts.keepalive > 0 && time.Duration(ns-c.lastWrite.Load()) >= c.opts.keepalive {
				// A writer holding the lock is already sending.
				if c.wmu.TryLock() {
					_ = c.writeLocked(frameKeepalive, nil)
					c.wmu.Unlock()
				}
			}
		}
	}
}

// PeerDescriptor returns the signed descriptor the responder sent in the
// handshake (bridges do, to clients), or nil. The caller must verify it and
// check it names the fingerprint it dialed.
func (c *Conn) PeerDescriptor() []byte { return c.peerDescriptor }
