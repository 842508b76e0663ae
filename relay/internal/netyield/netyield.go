// Package netyield lets a goroutine that computes for milliseconds step
// aside until the Go runtime has polled the network, so that a relay with
// one P (GOMAXPROCS=1, or every P computing) still forwards the cells that
// arrive meanwhile.
//
// Why runtime.Gosched is not enough: the scheduler looks for sockets that
// became ready only when it finds nothing runnable (and from sysmon, every
// 10 ms). A goroutine that yields with Gosched is itself runnable, so the
// link readers parked in the netpoller stay parked until it blocks. Yield
// blocks instead: it writes one byte to a pipe whose read end a helper
// goroutine waits on in the netpoller and parks until the helper resumes
// it. With nothing else runnable, the scheduler polls; the poll reports the
// pipe and every socket that became ready together; the helper first lets
// everything readied run (Gosched puts it behind them) and only then wakes
// the yielder. A link writer woken before the Yield runs first as well.
//
// The cost is a pipe write and read and three goroutine switches, a few
// microseconds: callers yield every millisecond or so of computing, not at
// every step (Slicer).
package netyield

import (
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Yielder makes Yield calls; its zero value is ready to use (the pipe and
// the helper start at the first Yield). Safe for concurrent use: yields
// run one at a time.
type Yielder struct {
	once   sync.Once
	mu     sync.Mutex // one Yield at a time; guards closed
	closed bool
	r, w   *os.File
	resume chan struct{}
	count  atomic.Uint64
}

// Count returns the Yields so far.
func (y *Yielder) Count() uint64 { return y.count.Load() }

func (y *Yielder) start() {
	r, w, err := os.Pipe()
	if err != nil {
		return // Yield falls back to Gosched
	}
	y.r, y.w, y.resume = r, w, make(chan struct{})
	go y.loop()
	// The helper must be parked on the pipe before the first byte is
	// written, or its Read returns at once and nothing polls: with one P,
	// this lets it run until it parks.
	runtime.Gosched()
}

// loop is the helper: every byte read is one Yield to resume, after
// whatever the same poll readied has run.
func (y *Yielder) loop() {
	var b [1]byte
	for {
		if _, err := y.r.Read(b[:]); err != nil {
			close(y.resume)
			return
		}
		runtime.Gosched()
		y.resume <- struct{}{}
	}
}

var one = []byte{0}

// Yield returns once the runtime has polled the network and run what the
// poll readied, or at once after Close. Without a pipe (none could be made)
// it is runtime.Gosched.
func (y *Yielder) Yield() {
	y.count.Add(1)
	y.once.Do(y.start)
	y.mu.Lock()
	defer y.mu.Unlock()
	if y.w == nil || y.closed {
		runtime.Gosched()
		return
	}
	if _, err := y.w.Write(one); err != nil {
		runtime.Gosched()
		return
	}
	<-y.resume
}

// Close stops the helper; later Yields are runtime.Gosched.
func (y *Yielder) Close() {
	y.once.Do(func() {}) // a Yielder closed unused starts nothing
	y.mu.Lock()
	defer y.mu.Unlock()
	if y.closed || y.w == nil {
		y.closed = true
		return
	}
	y.closed = true
	y.w.Close() // the helper's Read ends with EOF
	for range y.resume {
	}
	y.r.Close()
}

// Slicer cuts a computation into slices of at least Slice between yields:
// Pause, called often (between pieces of work of tens of microseconds),
// yields only when a slice has passed since the last yield. Not safe for
// concurrent use; the zero value never yields.
type Slicer struct {
	Y     *Yielder
	Slice time.Duration
	last  time.Time
}

// Start begins a computation: its first slice runs from now.
func (s *Slicer) Start() { s.last = time.Now() }

// Pause yields when a slice has passed since Start or the last yield.
func (s *Slicer) Pause() {
	if s.Y == nil || s.Slice <= 0 {
		return
	}
	if now := time.Now(); now.Sub(s.last) >= s.Slice {
		s.Y.Yield()
		s.last = time.Now()
	}
}
