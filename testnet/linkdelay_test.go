package testnet

import (
	"io"
	"net"
	"testing"
	"time"
)

// TestForwarderRecord: a recording forwarder notes every chunk it passes
// on, each way, with the relay's name, and no chunk leaves before the delay
// has passed; the record keeps at most maxLinkRecord chunks, the newest.
func TestForwarderRecord(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c) // echo
	}()
	const delay = 5 * time.Millisecond
	f, err := NewForwarder(LinkShape{Delay: delay})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rec := &LinkRecord{}
	f.Record(rec, "r1")
	f.SetTarget(ln.Addr().String())
	start := time.Now()
	c, err := net.Dial("tcp", f.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	msg := make([]byte, 1000)
	for i := 0; i < 3; i++ {
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, msg); err != nil {
			t.Fatal(err)
		}
	}
	// The echo's last chunk is noted just after it is written: wait for it.
	deadline := time.Now().Add(10 * time.Second)
	var got [2]int
	for {
		got = [2]int{}
		for _, ch := range rec.Between(start, time.Now().Add(time.Second)) {
			if ch.Relay != "r1" || ch.Conn != 1 {
				t.Fatalf("chunk of relay %q, connection %d", ch.Relay, ch.Conn)
			}
			if ch.Wrote.Sub(ch.Read) < delay {
				t.Fatalf("a chunk left %v after it was read, before the %v delay", ch.Wrote.Sub(ch.Read), delay)
			}
			if ch.ToRelay {
				got[0] += ch.Bytes
			} else {
				got[1] += ch.Bytes
			}
		}
		if got == [2]int{3000, 3000} || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got != [2]int{3000, 3000} {
		t.Fatalf("recorded %d bytes to the relay and %d back, want 3000 each", got[0], got[1])
	}
	if n := len(rec.Between(time.Now().Add(time.Hour), time.Now().Add(2*time.Hour))); n != 0 {
		t.Fatalf("%d chunks recorded in the future", n)
	}

	// Bounded: the oldest half goes when the record is full.
	full := &LinkRecord{}
	t0 := time.Now()
	for i := 0; i <= maxLinkRecord; i++ {
		full.add(LinkChunk{Conn: i, Read: t0})
	}
	all := full.Between(t0, t0.Add(time.Second))
	if len(all) > maxLinkRecord || all[len(all)-1].Conn != maxLinkRecord || all[0].Conn != maxLinkRecord/2 {
		t.Fatalf("a full record holds %d chunks, %d to %d", len(all), all[0].Conn, all[len(all)-1].Conn)
	}
}
