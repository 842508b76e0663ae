package testnet

import (
	"net"
	"testing"
	"time"
)

// TestRxStampIsArrival: a forwarder's source stamps what it reads with when
// the kernel received it, not when it was read: bytes written, then read
// 20 ms later, carry a time before the read began (and not before the
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
	for range 3 {
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
		if !at.Before(readAt) || at.Before(wrote.Add(-time.Millisecond)) {
			t.Fatalf("stamp %v after the write, read began %v after it: want the arrival", at.Sub(wrote), readAt.Sub(wrote))
		}
	}
	out.Close()
	if _, _, err := sr.readStamped(buf); err == nil {
		t.Fatal("read after the peer closed: no error")
	}
}
