package netyield

import (
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// computeWhile runs a computation of `slices` busy slices on one P, calling
// yield between them, while a message waits in a loopback socket for a
// reader parked in the netpoller. It returns the slice after which the
// reader had the message (slices when only after the computation) and the
// computation's wall time.
func computeWhile(t *testing.T, slices int, yield func()) (seen int, took time.Duration) {
	t.Helper()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	var got atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		var b [1]byte
		if _, err := server.Read(b[:]); err == nil {
			got.Store(true)
		}
	}()
	// The reader parks in the netpoller, and the sleep's idle P polls the
	// network: sysmon's own poll (every 10 ms) is then far off.
	time.Sleep(2 * time.Millisecond)
	if _, err := client.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	seen = slices
	start := time.Now()
	for i := range slices {
		busy(100 * time.Microsecond)
		yield()
		if got.Load() && seen == slices {
			seen = i
		}
	}
	took = time.Since(start)
	<-done
	return seen, took
}

// busy computes for d without blocking or calling into the scheduler.
func busy(d time.Duration) {
	for start := time.Now(); time.Since(start) < d; {
		for range 1000 {
			sink++
		}
	}
}

var sink int

// TestYieldPollsNetwork: with one P, a message that arrived before a
// computation reaches its reader at the computation's first Yield, not at
// its end. runtime.Gosched in Yield's place (the mutation) must fail it.
func TestYieldPollsNetwork(t *testing.T) {
	var y Yielder
	defer y.Close()
	if seen, _ := computeWhile(t, 20, y.Yield); seen != 0 {
		t.Fatalf("the reader got the message after slice %d of 20, want after the first yield", seen)
	}
	t.Run("mutation/Gosched", func(t *testing.T) {
		seen, took := computeWhile(t, 20, runtime.Gosched)
		if took > 5*time.Millisecond {
			// sysmon polls a network it has not seen polled for 10 ms:
			// on a loaded machine the computation may last that long.
			t.Skipf("the computation took %v: inconclusive", took)
		}
		if seen < 20 {
			t.Fatalf("with Gosched the reader got the message after slice %d: the test would not see a Yield that does not poll", seen)
		}
	})
}

// TestYielderClose: Yield after Close does not block, nor does Close of a
// Yielder never used.
func TestYielderClose(t *testing.T) {
	var y Yielder
	y.Yield()
	y.Close()
	y.Close()
	y.Yield()
	var unused Yielder
	unused.Close()
	unused.Yield()
}

// TestSlicer: Pause yields only after a slice; the zero Slicer never does.
func TestSlicer(t *testing.T) {
	var zero Slicer
	zero.Start()
	zero.Pause()
	var y Yielder
	defer y.Close()
	s := Slicer{Y: &y, Slice: time.Hour}
	s.Start()
	s.Pause() // within the slice: returns without the pipe
	if y.w != nil {
		t.Fatal("Pause yielded within its slice")
	}
	s.Slice = time.Nanosecond
	s.Pause()
	if y.w == nil {
		t.Fatal("Pause did not yield after its slice")
	}
}

// BenchmarkYield: the cost of one Yield with nothing else to run.
func BenchmarkYield(b *testing.B) {
	var y Yielder
	defer y.Close()
	for b.Loop() {
		y.Yield()
	}
}
