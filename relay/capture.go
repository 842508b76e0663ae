package relay

// The audit capture (config audit_capture, spec/10-confidential.md §8): for
// testing only, a relay appends one record per compute or edge message it
// decrypts or sends, in plaintext, to capture.log in its data directory:
//
//	dir  u8   0x80 | 0 received from the client, 1 received on an edge
//	          (opened), 2 sent to the client, 3 sent on an edge (before
//	          sealing): the 0x80 bit marks the record timed
//	len  u32  big-endian
//	time u64  when the record was written, Unix nanoseconds, big-endian
//	msg  len bytes: the compute message (type byte first) for 0 and 2, the
//	          edge message plaintext (type byte first) for 1 and 3
//
// compute/audit reads the file. A relay that serves no compute role (a
// guard) creates the file and leaves it empty, so the audit knows it looked.

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/unfed/unfed/relay/hop"
)

// CaptureFile is the name of the audit capture in data_dir.
const CaptureFile = "capture.log"

// captureLog appends capture records; it is safe for concurrent use.
type captureLog struct {
	log *slog.Logger

	mu     sync.Mutex // guards the fields below
	f      *os.File
	buf    []byte
	failed bool
}

// openCapture creates (or appends to) data_dir/capture.log, mode 0600.
func openCapture(dataDir string, log *slog.Logger) (*captureLog, error) {
	path := filepath.Join(dataDir, CaptureFile)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("relay: audit_capture: %w", err)
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return nil, fmt.Errorf("relay: audit_capture: %w", err)
	}
	return &captureLog{log: log, f: f}, nil
}

// record appends one record with a single write, so records of concurrent
// sessions never interleave. Write errors are logged once; later records are
// dropped, never half written.
func (c *captureLog) record(dir hop.CaptureDir, msg []byte) {
	if len(msg) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.f == nil || c.failed {
		return
	}
	c.buf = append(c.buf[:0], byte(dir)|0x80)
	c.buf = binary.BigEndian.AppendUint32(c.buf, uint32(len(msg)))
	c.buf = binary.BigEndian.AppendUint64(c.buf, uint64(time.Now().UnixNano()))
	c.buf = append(c.buf, msg...)
	if _, err := c.f.Write(c.buf); err != nil {
		c.failed = true
		c.log.Error("relay: audit capture stopped", "err", err)
	}
	if cap(c.buf) > 4<<20 {
		c.buf = nil
	}
}

// close flushes and closes the file; later records are dropped.
func (c *captureLog) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.f == nil {
		return nil
	}
	err := c.f.Close()
	c.f = nil
	return err
}
