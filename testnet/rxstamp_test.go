package testnet

import (
	"net"
	"testing"
	"time"
)

// TestRxStampIsArrival: a forwarder's source stamps what it reads with when
// the kernel received it, not when it was read: bytes written, then read
// 20 ms later, carry a time before the read began (and never before the
// write).
func TestRxStampIsArrival(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	out, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	in, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	sr, ok := newRxConn(in).(stampedReader)
	if !ok {
		t.Fatal("a loopback TCP connection gave no receive timestamps")
	}
	buf := make([]byte, 64)
	// The kernel turns receive timestamps on for the whole stack from a
	// work item after the first socket asks (net_enable_timestamp): on a
	// busy machine the first chunks may come unstamped (and get the time
	// of the read). Three stamped ones must come within 50.
	stamped := 0
	for try := 0; try < 50 && stamped < 3; try++ {
		wrote := time.Now()
		if _, err := out.Write([]byte("chunk")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
		readAt := time.Now()
		n, at, err := sr.readStamped(buf)
		if err != nil || string(buf[:n]) != "chunk" {
			t.Fatalf("read %q, %v", buf[:n], err)
		}
		if at.Before(wrote.Add(-time.Millisecond)) {
			t.Fatalf("stamp %v before the write", wrote.Sub(at))
		}
		if at.Before(readAt) {
			stamped++
		}
	}
	if stamped < 3 {
		t.Fatalf("%d of the reads carried the arrival time, want 3: the stamps are the reads' times", stamped)
	}
	out.Close()
	if _, _, err := sr.readStamped(buf); err == nil {
		t.Fatal("read after the peer closed: no error")
	}
}
