package openai_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/unfed/unfed/client/openai"
	"github.com/unfed/unfed/client/openai/openaitest"
)

// slowBody opens a connection that sends a request header announcing a
// 200-byte body, then trickles the body a byte every 50 ms. It returns a
// channel that receives, once the server ends the exchange (a response or
// a close), how many body bytes were still unsent.
func slowBody(t *testing.T, addr string) <-chan int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	const size = 200
	if _, err := io.WriteString(c, "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+
		"Content-Length: 200\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	left := make(chan int, 1)
	sent := make(chan int, size+1)
	go func() {
		for i := range size {
			if _, err := c.Write([]byte{' '}); err != nil {
				return
			}
			sent <- i + 1
			time.Sleep(50 * time.Millisecond)
		}
	}()
	go func() {
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		io.Copy(io.Discard, c) // until the server answers and closes, or closes
		n := 0
		for more := true; more; {
			select {
			case n = <-sent:
			default:
				more = false
			}
		}
		left <- size - n
	}()
	return left
}

// TestClientAPISlowBody: clients that trickle request bodies are cut off at
// the body timeout rather than held for as long as they trickle; while they
// hold every slot of the capped server, a real request is still served
// once they are cut, idle connections are evicted to make room, and a
// streamed response lasting longer than the body timeout is not cut.
func TestClientAPISlowBody(t *testing.T) {
	b := &openaitest.Backend{ModelList: testModels(), Delay: 60 * time.Millisecond}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	lim := openai.Limits{MaxConns: 4, HeaderTimeout: 20 * time.Second, BodyTimeout: 400 * time.Millisecond}
	go func() {
		done <- openai.ServeLimited(ctx, ln, openai.NewHandler(b, nil, openai.Options{}), time.Second, lim)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	addr := ln.Addr().String()
	url := "http://" + addr

	// Six slow bodies against four slots.
	var lefts []<-chan int
	for range 6 {
		lefts = append(lefts, slowBody(t, addr))
	}
	// A streamed completion (18 tokens, 60 ms apart: longer than the body
	// timeout) queued behind them is served, whole.
	r := do(t, "POST", url+"/v1/completions", `{"model":"stories","prompt":"Once upon a time","max_tokens":32,"stream":true}`, nil)
	if r.status != 200 || !strings.Contains(string(r.body), "data: [DONE]") || !strings.Contains(string(r.body), "Lily") {
		t.Fatalf("streamed completion behind slow bodies: %d %q", r.status, r.body)
	}
	for i, l := range lefts {
		if n := <-l; n == 0 {
			t.Errorf("slow body %d: the server waited for its whole trickled body", i)
		}
	}

	// Idle connections that never send a request are evicted for a real one.
	var idle []net.Conn
	for range 4 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle = append(idle, c)
	}
	if r := do(t, "GET", url+"/v1/models", "", nil); r.status != 200 {
		t.Fatalf("models with the slots held by idle connections: %d %s", r.status, r.body)
	}
	idle[0].SetReadDeadline(time.Now().Add(5 * time.Second)) // well inside the header timeout
	if _, err := bufio.NewReader(idle[0]).ReadByte(); err != io.EOF {
		t.Fatalf("oldest idle connection: read %v, want EOF (evicted for the real request)", err)
	}
}
