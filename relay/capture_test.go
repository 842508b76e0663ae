package relay

import (
	"bytes"
	"encoding/binary"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/unfed/unfed/relay/hop"
)

// TestCaptureLog: concurrent records land whole and in the documented
// layout (timed, in time order), in a 0600 file that survives a reopen (appending), and nothing is
// written after close.
func TestCaptureLog(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, CaptureFile)
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := openCapture(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	const writers, each = 8, 200
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				msg := bytes.Repeat([]byte{byte(w)}, 1+i)
				c.record(hop.CaptureDir(w%4), msg)
			}
		}()
	}
	wg.Wait()
	c.record(hop.CaptureToClient, nil) // empty: not recorded
	if err := c.close(); err != nil {
		t.Fatal(err)
	}
	c.record(hop.CaptureToClient, []byte{1}) // after close: dropped
	c2, err := openCapture(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	c2.record(hop.CaptureFromEdge, []byte{0x03, 9})
	c2.close()

	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("capture file: %v %v", fi.Mode(), err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]int{}
	n := 0
	const head = 1 + 4 + 8 // dir | 0x80, len, time
	var last int64
	for len(b) > 0 {
		if len(b) < head {
			t.Fatalf("record %d: truncated header", n)
		}
		dir, size, at := b[0], int(binary.BigEndian.Uint32(b[1:])), int64(binary.BigEndian.Uint64(b[5:]))
		if len(b) < head+size || size == 0 || dir&0x80 == 0 || dir&^0x80 > 3 {
			t.Fatalf("record %d: dir %d size %d of %d bytes", n, dir, size, len(b)-head)
		}
		dir &^= 0x80
		// Written under the lock, so in time order.
		if at < last || time.Since(time.Unix(0, at)) > time.Minute {
			t.Fatalf("record %d: time %v after %v", n, time.Unix(0, at), time.Unix(0, last))
		}
		last = at
		msg := b[head : head+size]
		b = b[head+size:]
		n++
		if n == writers*each+1 {
			if dir != byte(hop.CaptureFromEdge) || !bytes.Equal(msg, []byte{0x03, 9}) {
				t.Fatalf("appended record: %d %x", dir, msg)
			}
			continue
		}
		w := int(msg[0])
		if dir != byte(w%4) || !bytes.Equal(msg, bytes.Repeat([]byte{byte(w)}, size)) || size != seen[w]+1 {
			t.Fatalf("record %d: dir %d, %d bytes of %x, writer %d at %d", n, dir, size, msg[0], w, seen[w])
		}
		seen[w]++
	}
	if n != writers*each+1 {
		t.Fatalf("%d records, want %d", n, writers*each+1)
	}
}
