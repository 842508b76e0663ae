package link_test

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"
)

// TestMain runs the echo child of BenchmarkProcessRoundTrip when asked to,
// and the tests otherwise.
func TestMain(m *testing.M) {
	if addr := os.Getenv("UNFED_ECHO_ADDR"); addr != "" {
		os.Exit(echoChild(addr))
	}
	os.Exit(m.Run())
}

// echoChild dials addr and returns every byte it reads until EOF.
func echoChild(addr string) int {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer c.Close()
	if _, err := io.Copy(c, c); err != nil {
		return 1
	}
	return 0
}

// BenchmarkProcessRoundTrip is the floor under every protocol round between
// two relay processes on this machine: a one-byte TCP round trip on
// 127.0.0.1 with a child process that echoes it, both ends blocking in the
// kernel in between, as the MPC parties do. "busy" sends the next byte at
// once; "idle" waits 200 us first, as a party does while it computes, so
// the vCPUs may sleep. Reports the median and 90th percentile in us.
func BenchmarkProcessRoundTrip(b *testing.B) {
	for _, pause := range []time.Duration{0, 200 * time.Microsecond} {
		name := "busy"
		if pause > 0 {
			name = "idle"
		}
		b.Run(name, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "UNFED_ECHO_ADDR="+ln.Addr().String())
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			defer cmd.Wait()
			ln.(*net.TCPListener).SetDeadline(time.Now().Add(30 * time.Second))
			c, err := ln.Accept()
			if err != nil {
				cmd.Process.Kill()
				b.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Minute))
			var rtt []time.Duration
			buf := []byte{1}
			for b.Loop() {
				if pause > 0 {
					time.Sleep(pause)
				}
				t := time.Now()
				if _, err := c.Write(buf); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, buf); err != nil {
					b.Fatal(err)
				}
				rtt = append(rtt, time.Since(t))
			}
			slices.Sort(rtt)
			b.ReportMetric(float64(rtt[len(rtt)/2].Nanoseconds())/1e3, "p50-us")
			b.ReportMetric(float64(rtt[len(rtt)*9/10].Nanoseconds())/1e3, "p90-us")
		})
	}
}
