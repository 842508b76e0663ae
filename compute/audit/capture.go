package audit

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// A relay with audit capture enabled appends one record per compute or edge
// message it decrypts or sends in plaintext to capture.log in its data
// directory (spec/10 §8):
//
//	dir  u8   0 received from the client, 1 received on an edge,
//	          2 sent to the client, 3 sent on an edge; plus 0x80 when the
//	          record is timed
//	len  u32  big-endian
//	time u64  timed records only: when the relay wrote the record, Unix
//	          nanoseconds, big-endian
//	msg  len bytes: a compute message (hop.Decode format, type byte first)
//	          for dir 0 and 2, an edge message (hop.DecodeEdge format) for 1 and 3
//
// Relays write timed records; untimed ones (older captures) still parse.

// Dir says where a captured message came from or went to.
type Dir uint8

// Record directions.
const (
	FromClient Dir = 0 // a compute message received from the client
	FromEdge   Dir = 1 // an edge message received from another hop
	ToClient   Dir = 2 // a compute message sent to the client
	ToEdge     Dir = 3 // an edge message sent to another hop
)

func (d Dir) String() string {
	switch d {
	case FromClient:
		return "from-client"
	case FromEdge:
		return "from-edge"
	case ToClient:
		return "to-client"
	case ToEdge:
		return "to-edge"
	}
	return fmt.Sprintf("dir(%d)", uint8(d))
}

// Edge reports whether the record holds an edge message.
func (d Dir) Edge() bool { return d == FromEdge || d == ToEdge }

// MaxRecord is the largest message a capture record may hold. Every compute
// and edge message fits one relay message (1 MiB); a record larger than this
// means a corrupt file, and reading it would only exhaust memory.
const MaxRecord = 64 << 20

// recordHeader is the size of a record's dir and len fields; a timed
// record has timeSize bytes more.
const (
	recordHeader = 1 + 4
	timeSize     = 8
	// timedFlag marks a timed record in the dir byte.
	timedFlag = 0x80
)

// ErrCapture is wrapped by every error about a capture file's format.
var ErrCapture = errors.New("audit: bad capture file")

// ErrTruncated is joined to ErrCapture when the file ends inside a record:
// a capture still being written (a live relay's) can end so, and a reader
// of one may take the records before it.
var ErrTruncated = errors.New("the file ends inside a record")

// Record is one captured message.
type Record struct {
	Dir Dir
	// Offset is the position of the record's first byte in the file: a
	// harness that noted the file's size between requests assigns records to
	// requests by it.
	Offset int64
	// Msg is the plaintext message, type byte first.
	Msg []byte
	// Time is when the relay wrote a timed record (Unix nanoseconds); the
	// zero time for an untimed one.
	Time time.Time
}

// AppendRecord appends the encoding of one untimed record to dst.
func AppendRecord(dst []byte, dir Dir, msg []byte) []byte {
	dst = append(dst, byte(dir))
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(msg)))
	return append(dst, msg...)
}

// AppendTimedRecord appends the encoding of one record written at at (a
// relay's records) to dst.
func AppendTimedRecord(dst []byte, dir Dir, at time.Time, msg []byte) []byte {
	dst = append(dst, byte(dir)|timedFlag)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(msg)))
	dst = binary.BigEndian.AppendUint64(dst, uint64(at.UnixNano()))
	return append(dst, msg...)
}

// Append re-encodes r as it was read: timed when r.Time is set.
func (r *Record) Append(dst []byte) []byte {
	if r.Time.IsZero() {
		return AppendRecord(dst, r.Dir, r.Msg)
	}
	return AppendTimedRecord(dst, r.Dir, r.Time, r.Msg)
}

// ReadCapture reads every record of the capture file at path. A missing
// file is an error (os.ErrNotExist); an empty file holds no records.
func ReadCapture(path string) ([]Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	defer f.Close()
	recs, err := ParseCapture(f)
	if err != nil {
		return recs, fmt.Errorf("%s: %w", path, err)
	}
	return recs, nil
}

// ParseCapture reads records from r until its end. It refuses a direction
// above 3, an empty record, and a record over MaxRecord; a stream that ends
// inside a record is an error naming the offset (the records before it are
// returned with it).
func ParseCapture(r io.Reader) ([]Record, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var recs []Record
	var off int64
	var hdr [recordHeader]byte
	for {
		n, err := io.ReadFull(br, hdr[:])
		if err == io.EOF {
			return recs, nil
		}
		if err != nil {
			return recs, fmt.Errorf("%w: truncated record header at offset %d (%d of %d bytes; %w)", ErrCapture, off, n, recordHeader, ErrTruncated)
		}
		dir := Dir(hdr[0] &^ timedFlag)
		size := binary.BigEndian.Uint32(hdr[1:])
		switch {
		case dir > ToEdge:
			return recs, fmt.Errorf("%w: record at offset %d has direction %d", ErrCapture, off, hdr[0])
		case size == 0:
			return recs, fmt.Errorf("%w: empty record at offset %d", ErrCapture, off)
		case size > MaxRecord:
			return recs, fmt.Errorf("%w: record at offset %d is %d bytes, over the %d-byte limit", ErrCapture, off, size, MaxRecord)
		}
		rec := Record{Dir: dir, Offset: off}
		head := int64(recordHeader)
		if hdr[0]&timedFlag != 0 {
			var ts [timeSize]byte
			if n, err := io.ReadFull(br, ts[:]); err != nil {
				return recs, fmt.Errorf("%w: truncated record time at offset %d (%d of %d bytes; %w)", ErrCapture, off, n, timeSize, ErrTruncated)
			}
			rec.Time = time.Unix(0, int64(binary.BigEndian.Uint64(ts[:])))
			head += timeSize
		}
		// Read in bounded chunks so a lying length on a short file costs
		// no more memory than the file holds.
		msg, err := readN(br, int(size))
		if err != nil {
			return recs, fmt.Errorf("%w: truncated record at offset %d: %d of %d bytes (%w)", ErrCapture, off, len(msg), size, ErrTruncated)
		}
		rec.Msg = msg
		recs = append(recs, rec)
		off += head + int64(size)
	}
}

// readN reads exactly n bytes, growing the buffer as data arrives.
func readN(r io.Reader, n int) ([]byte, error) {
	const chunk = 1 << 20
	buf := make([]byte, 0, min(n, chunk))
	for len(buf) < n {
		want := min(n-len(buf), chunk)
		if cap(buf)-len(buf) < want {
			nb := make([]byte, len(buf), min(n, max(2*cap(buf), len(buf)+want)))
			copy(nb, buf)
			buf = nb
		}
		got, err := io.ReadFull(r, buf[len(buf):len(buf)+want])
		buf = buf[:len(buf)+got]
		if err != nil {
			return buf, err
		}
	}
	return buf, nil
}
