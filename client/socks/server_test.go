package socks_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/unfed/unfed/client/openai"
	"github.com/unfed/unfed/client/openai/openaitest"
	"github.com/unfed/unfed/client/socks"
)

// startSOCKS runs a SOCKS front over the OpenAI handler and a fake backend
// on 127.0.0.1; it is stopped, and Serve's result checked, at cleanup.
func startSOCKS(t *testing.T, srv *socks.Server, b *openaitest.Backend) string {
	t.Helper()
	if b.ModelList == nil {
		b.ModelList = []openai.Model{{ID: "stories"}}
	}
	if srv.Handler == nil {
		srv.Handler = openai.NewHandler(b, nil, openai.Options{})
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve returned %v after cancel", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("Serve did not return after cancel")
		}
	})
	return ln.Addr().String()
}

func runCurl(t *testing.T, args ...string) (string, int) {
	t.Helper()
	path, err := exec.LookPath("curl")
	if err != nil {
		t.Fatalf("curl is required for this test: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, append([]string{"-sS", "--max-time", "20"}, args...)...).CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return string(out), exit.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(out), 0
}

// TestSOCKS5Front: curl through the SOCKS front gets a completion; a
// non-.unfed host is refused.
func TestSOCKS5Front(t *testing.T) {
	b := &openaitest.Backend{}
	addr := startSOCKS(t, &socks.Server{}, b)

	out, code := runCurl(t, "--socks5-hostname", addr, "-H", "Content-Type: application/json",
		"-d", `{"model":"stories","prompt":"Once upon a time","max_tokens":5}`, "http://stories.unfed/v1/completions")
	if code != 0 {
		t.Fatalf("curl exit %d: %s", code, out)
	}
	var c struct {
		Object  string `json:"object"`
		Model   string `json:"model"`
		Choices []struct {
			Text         string `json:"text"`
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
		Usage struct {
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if c.Object != "text_completion" || c.Model != "stories" || len(c.Choices) != 1 ||
		c.Choices[0].Text != ", there was a little" || c.Choices[0].FinishReason != "length" || c.Usage.CompletionTokens != 5 {
		t.Fatalf("completion = %s", out)
	}

	// Streaming works through the tunnel too.
	out, code = runCurl(t, "-N", "--socks5-hostname", addr, "-d", `{"model":"stories","prompt":"x","max_tokens":2,"stream":true}`,
		"http://stories.unfed/v1/completions")
	if code != 0 || !strings.HasSuffix(out, "data: [DONE]\n\n") || strings.Count(out, "data: ") != 4 {
		t.Fatalf("stream exit %d: %q", code, out)
	}

	// Any other destination: SOCKS reply 0x02, which curl reports as exit 97.
	out, code = runCurl(t, "--socks5-hostname", addr, "http://example.com/")
	if code != 97 {
		t.Fatalf("example.com: curl exit %d, want 97 (proxy refused): %s", code, out)
	}
	// A .unfed name on another port is refused as well.
	if out, code = runCurl(t, "--socks5-hostname", addr, "http://stories.unfed:8080/v1/models"); code != 97 {
		t.Fatalf("port 8080: curl exit %d, want 97: %s", code, out)
	}
	if n := len(b.Requests()); n != 2 {
		t.Fatalf("backend saw %d requests, want 2", n)
	}
}

// TestSOCKSCredentialsIsolate: the SOCKS credentials reach Generate as the
// isolation key; different credentials never share one.
func TestSOCKSCredentialsIsolate(t *testing.T) {
	b := &openaitest.Backend{}
	addr := startSOCKS(t, &socks.Server{}, b)
	chat := func(cred string) string {
		args := []string{"--socks5-hostname", addr, "-d", `{"model":"stories","max_tokens":1,"messages":[{"role":"user","content":"Hi"}]}`,
			"http://stories.unfed/v1/chat/completions"}
		if cred != "" {
			args = append([]string{"--proxy-user", cred}, args...)
		}
		if out, code := runCurl(t, args...); code != 0 || !strings.Contains(out, "chat.completion") {
			t.Fatalf("curl exit %d: %s", code, out)
		}
		reqs := b.Requests()
		return reqs[len(reqs)-1].Isolation
	}
	alice1, alice2, bob, none := chat("alice:pw"), chat("alice:pw"), chat("bob:pw"), chat("")
	if alice1 != alice2 {
		t.Error("same credentials, same conversation: different isolation keys")
	}
	if alice1 == bob || alice1 == none || bob == none {
		t.Error("different SOCKS credentials share an isolation key")
	}
}

// dialSOCKS connects and performs a no-auth greeting.
func dialSOCKS(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	return c
}

func readN(t *testing.T, c net.Conn, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	return b
}

func TestSOCKSReplyCodes(t *testing.T) {
	addr := startSOCKS(t, &socks.Server{}, &openaitest.Backend{})
	cases := []struct {
		name  string
		req   []byte
		reply byte
	}{
		{"ipv4", []byte{5, 1, 0, 1, 93, 184, 216, 34, 0, 80}, socks.ReplyAddressNotSupported},
		{"ipv6", append([]byte{5, 1, 0, 4}, make([]byte, 18)...), socks.ReplyAddressNotSupported},
		{"bind", append([]byte{5, 2, 0, 3, 7}, "m.unfed\x00\x50"...), socks.ReplyCommandNotSupported},
		{"udp associate", []byte{5, 3, 0, 1, 0, 0, 0, 0, 0, 0}, socks.ReplyCommandNotSupported},
		{"other host", append([]byte{5, 1, 0, 3, 11}, "example.com\x00\x50"...), socks.ReplyNotAllowed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conn := dialSOCKS(t, addr)
			if _, err := conn.Write(append([]byte{5, 1, 0}, c.req...)); err != nil {
				t.Fatal(err)
			}
			got := readN(t, conn, 12)
			if got[0] != 5 || got[1] != 0 || got[2] != 5 || got[3] != c.reply {
				t.Fatalf("reply %x, want code 0x%02x", got, c.reply)
			}
			if n, err := conn.Read(make([]byte, 1)); n != 0 || err == nil {
				t.Fatal("connection not closed after a refusal")
			}
		})
	}
}

// TestSOCKSHostMustBeUnfed: past the handshake, HTTP requests for a
// non-.unfed Host are refused by the in-process server.
func TestSOCKSHostMustBeUnfed(t *testing.T) {
	addr := startSOCKS(t, &socks.Server{}, &openaitest.Backend{})
	conn := dialSOCKS(t, addr)
	conn.Write(append([]byte{5, 1, 0, 5, 1, 0, 3, 13}, "stories.unfed\x00\x50"...))
	if got := readN(t, conn, 12); got[3] != socks.ReplySucceeded {
		t.Fatalf("reply %x", got)
	}
	conn.Write([]byte("GET /v1/models HTTP/1.1\r\nHost: example.com\r\n\r\nGET /v1/models HTTP/1.1\r\nHost: stories.unfed\r\n\r\n"))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest {
		t.Fatalf("foreign Host: status %d", resp.StatusCode)
	}
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"id":"stories"`) {
		t.Fatalf(".unfed Host: %d %s", resp.StatusCode, body)
	}
}

func TestSOCKSHandshakeTimeout(t *testing.T) {
	addr := startSOCKS(t, &socks.Server{HandshakeTimeout: 50 * time.Millisecond}, &openaitest.Backend{})
	conn := dialSOCKS(t, addr)
	conn.Write([]byte{5, 1}) // a greeting that never completes
	if n, err := conn.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatal("stalled handshake was not closed")
	}
}

// socksRequest opens a SOCKS5 tunnel to stories.unfed:80 over c and sends
// an HTTP request on it.
func socksRequest(t *testing.T, c net.Conn, method, path, body string) {
	t.Helper()
	c.Write([]byte{5, 1, 0})
	if got := readN(t, c, 2); got[1] != 0 {
		t.Fatalf("greeting reply %x", got)
	}
	host := "stories.unfed"
	c.Write(append(append([]byte{5, 1, 0, 3, byte(len(host))}, host...), 0, 80))
	if got := readN(t, c, 10); got[1] != 0 {
		t.Fatalf("connect reply %x", got)
	}
	fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", method, path, host, len(body), body)
}

// TestSOCKSMaxConns: with every slot serving a request, a new client is
// not served until one leaves.
func TestSOCKSMaxConns(t *testing.T) {
	b := &openaitest.Backend{BlockAfter: 1}
	addr := startSOCKS(t, &socks.Server{MaxConns: 1, ShutdownGrace: time.Millisecond}, b)
	first := dialSOCKS(t, addr)
	socksRequest(t, first, "POST", "/v1/completions", `{"model":"stories","prompt":"x","stream":true}`)
	<-b.Started() // the first connection holds the slot, serving a request

	second := dialSOCKS(t, addr)
	second.Write([]byte{5, 1, 0})
	_ = second.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, _ := second.Read(make([]byte, 2)); n != 0 {
		t.Fatal("second connection served beyond MaxConns while the first serves a request")
	}
	first.Close()
	_ = second.SetReadDeadline(time.Now().Add(20 * time.Second))
	if got := readN(t, second, 2); got[0] != 5 || got[1] != 0 {
		t.Fatalf("second greeting reply %x", got)
	}
}

// TestSOCKSSlowClients: hundreds of connections that stall in the
// handshake (or idle after it) do not starve a real client: the fair cap
// evicts the oldest of them for it, well before the handshake timeout.
func TestSOCKSSlowClients(t *testing.T) {
	addr := startSOCKS(t, &socks.Server{MaxConns: 8, HandshakeTimeout: time.Minute}, &openaitest.Backend{})
	for i := range 200 {
		c := dialSOCKS(t, addr)
		switch i % 3 {
		case 0:
			c.Write([]byte{5, 1}) // a greeting that never completes
		case 1: // nothing at all
		case 2: // a complete handshake, then no request
			c.Write([]byte{5, 1, 0})
		}
	}
	for range 3 {
		c := dialSOCKS(t, addr)
		_ = c.SetDeadline(time.Now().Add(10 * time.Second)) // the handshake timeout is a minute
		socksRequest(t, c, "GET", "/v1/models", "")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("real request behind 200 stalled connections: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), "stories") {
			t.Fatalf("models: %d %s", resp.StatusCode, body)
		}
		c.Close()
	}
}

// TestSOCKSCancelStopsGeneration: shutting the front down while a request
// is generating cancels the backend's context.
func TestSOCKSCancelStopsGeneration(t *testing.T) {
	b := &openaitest.Backend{BlockAfter: 1, ModelList: []openai.Model{{ID: "stories"}}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- (&socks.Server{Handler: openai.NewHandler(b, nil, openai.Options{}), ShutdownGrace: time.Millisecond}).Serve(ctx, ln)
	}()
	conn := dialSOCKS(t, ln.Addr().String())
	conn.Write(append([]byte{5, 1, 0, 5, 1, 0, 3, 13}, "stories.unfed\x00\x50"...))
	readN(t, conn, 12)
	body := `{"model":"stories","prompt":"x","stream":true}`
	conn.Write([]byte("POST /v1/completions HTTP/1.1\r\nHost: stories.unfed\r\nContent-Length: " +
		itoa(len(body)) + "\r\n\r\n" + body))
	<-b.Started()
	cancel()
	select {
	case <-b.Canceled():
	case <-time.After(20 * time.Second):
		t.Fatal("generation not canceled by shutdown")
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Serve did not return")
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
