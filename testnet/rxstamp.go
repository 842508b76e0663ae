package testnet

import (
	"encoding/binary"
	"io"
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// stampedReader is a forwarder's source that can say when the kernel
// received what a read returns.
type stampedReader interface {
	readStamped(b []byte) (n int, at time.Time, err error)
}

// rxConn reads a TCP connection with the kernel's receive timestamp
// (SO_TIMESTAMPNS): a link's delay then runs from when the bytes reached
// the forwarder's socket, as netem's runs from when a packet reaches the
// queue, and not from when the forwarder got round to reading them (a
// wake-up of the harness's process, tens to hundreds of microseconds on a
// VM, once per link crossing, which the emulated round trip does not
// count).
type rxConn struct {
	net.Conn
	rc  syscall.RawConn
	oob []byte
}

// newRxConn returns c as an rxConn, or c itself when it is not TCP or the
// kernel refuses the option.
func newRxConn(c net.Conn) io.Reader {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	}); err != nil || serr != nil {
		return c
	}
	return &rxConn{Conn: c, rc: rc, oob: make([]byte, unix.CmsgSpace(16))}
}

// readStamped reads into b and returns when the kernel received the last
// of it (the time of the read when it does not say: the kernel turns
// stamping on for the stack from a work item after the first socket asks,
// so the first chunks of a quiet machine's first link may come without).
func (r *rxConn) readStamped(b []byte) (int, time.Time, error) {
	var n, oobn int
	var rerr error
	err := r.rc.Read(func(fd uintptr) bool {
		n, oobn, _, _, rerr = unix.Recvmsg(int(fd), b, r.oob, 0)
		return rerr != unix.EAGAIN
	})
	now := time.Now()
	if err == nil {
		err = rerr
	}
	if err != nil {
		return 0, now, err
	}
	if n == 0 && len(b) > 0 {
		return 0, now, io.EOF
	}
	return n, rxTime(r.oob[:oobn], now), nil
}

// rxTime is the receive time in the control messages oob, as an offset
// back from now (so it keeps now's monotonic reading); now when there is
// none or it is not in the last second.
func rxTime(oob []byte, now time.Time) time.Time {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return now
	}
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_SOCKET || m.Header.Type != unix.SCM_TIMESTAMPNS || len(m.Data) < 16 {
			continue
		}
		at := time.Unix(int64(binary.NativeEndian.Uint64(m.Data[0:8])), int64(binary.NativeEndian.Uint64(m.Data[8:16])))
		if age := now.Sub(at); age >= 0 && age < time.Second {
			return now.Add(-age)
		}
	}
	return now
}
