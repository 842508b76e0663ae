package openai_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/unfed/unfed/client/openai"
	"github.com/unfed/unfed/client/openai/openaitest"
)

// TestServeShutdown: Serve answers requests, and on cancel closes a
// streaming request (its generation is canceled) and returns nil.
func TestServeShutdown(t *testing.T) {
	b := &openaitest.Backend{ModelList: testModels(), BlockAfter: 1}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- openai.Serve(ctx, ln, openai.NewHandler(b, nil, openai.Options{}), time.Millisecond) }()
	url := "http://" + ln.Addr().String()
	if r := do(t, "GET", url+"/v1/models", "", nil); r.status != 200 || !strings.Contains(string(r.body), "stories") {
		t.Fatalf("models: %d %s", r.status, r.body)
	}
	go func() { // cut off by the shutdown: its error is expected
		resp, err := http.Post(url+"/v1/completions", "application/json", strings.NewReader(`{"model":"stories","prompt":"x","stream":true}`))
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	<-b.Started()
	cancel()
	waitCanceled(t, b)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Serve did not return")
	}
}
