package relay

import (
	"encoding/binary"
	"fmt"
	"os"
	"sync"

	"github.com/unfed/unfed/relay/circuit"
	"github.com/unfed/unfed/relay/link"
)

// A link recorder is a test and audit hook (config debug.record_links): it
// appends every frame this relay receives on any link, after link
// decryption, to a file, each as a 4-byte big-endian length and the frame.
// Tests use it to show what a relay can see (TestGuardSeesNoActivations);
// the privacy audit will use it to measure what each role learns. It is
// never on by default and must never be enabled on a relay serving real
// users: the file holds everything the relay could read.
type linkRecorder struct {
	mu    sync.Mutex // guards f and wraps
	f     *os.File
	wraps map[*link.Conn]*recordedLink
}

func newLinkRecorder(path string) (*linkRecorder, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("relay: debug.record_links: %w", err)
	}
	return &linkRecorder{f: f, wraps: map[*link.Conn]*recordedLink{}}, nil
}

// wrap returns the recording view of c, the same one every time, so the
// circuit switch, which tells links apart by identity, sees one link.
// A nil recorder returns c itself.
func (r *linkRecorder) wrap(c *link.Conn) circuit.Link {
	if r == nil {
		return c
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	w, ok := r.wraps[c]
	if !ok {
		w = &recordedLink{Conn: c, r: r}
		r.wraps[c] = w
		go func() {
			<-c.Done()
			r.mu.Lock()
			delete(r.wraps, c)
			r.mu.Unlock()
		}()
	}
	return w
}

func (r *linkRecorder) record(frame []byte) {
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(frame)))
	r.mu.Lock()
	defer r.mu.Unlock()
	r.f.Write(hdr[:])
	r.f.Write(frame)
}

func (r *linkRecorder) close() {
	if r != nil {
		r.mu.Lock()
		r.f.Close()
		r.mu.Unlock()
	}
}

type recordedLink struct {
	*link.Conn
	r *linkRecorder
}

// ReadFrameAlloc records as ReadFrame does (the switch reads through it
// when it can).
func (l *recordedLink) ReadFrameAlloc(alloc func(n int) []byte) ([]byte, error) {
	b, err := l.Conn.ReadFrameAlloc(alloc)
	if err == nil {
		l.r.record(b)
	}
	return b, err
}

func (l *recordedLink) ReadFrame() ([]byte, error) {
	b, err := l.Conn.ReadFrame()
	if err == nil {
		l.r.record(b)
	}
	return b, err
}
