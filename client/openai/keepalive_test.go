package openai_test

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/unfed/unfed/client/openai"
)

// slowBackend accepts a request, then takes prefill before its one token.
type slowBackend struct{ prefill time.Duration }

func (slowBackend) Models(context.Context) ([]openai.Model, error) {
	return []openai.Model{{ID: "m"}}, nil
}

func (b slowBackend) Generate(ctx context.Context, req openai.GenerateRequest, emit func(openai.Token) error) (openai.Usage, error) {
	if req.Accepted != nil {
		req.Accepted()
	}
	select {
	case <-time.After(b.prefill):
	case <-ctx.Done():
		return openai.Usage{}, ctx.Err()
	}
	if err := emit(openai.Token{Text: "hi", ID: 1}); err != nil {
		return openai.Usage{}, err
	}
	return openai.Usage{PromptTokens: 1, CompletionTokens: 1, FinishReason: "length"}, nil
}

// TestStreamHeadersAtOnceWithKeepAlives: a stream's headers arrive as soon
// as the backend accepts the request, long before the first token, and
// comment lines keep the connection alive meanwhile; the stream then
// carries the token and ends properly.
func TestStreamHeadersAtOnceWithKeepAlives(t *testing.T) {
	const prefill = 600 * time.Millisecond
	srv := httptest.NewServer(openai.NewHandler(slowBackend{prefill: prefill}, nil, openai.Options{KeepAlive: 100 * time.Millisecond}))
	defer srv.Close()
	start := time.Now()
	resp, err := http.Post(srv.URL+"/v1/completions", "application/json",
		strings.NewReader(`{"model":"m","prompt":"x","max_tokens":1,"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if took := time.Since(start); took >= prefill || resp.StatusCode != 200 ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("headers after %v (prefill %v): %d %q", took, prefill, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(resp.Body)
	keepAlives, sawToken, sawDone := 0, false, false
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, ": keep-alive"):
			if sawToken {
				t.Fatal("keep-alive after the first token")
			}
			keepAlives++
		case strings.Contains(l, `"text":"hi"`):
			sawToken = true
		case l == "data: [DONE]":
			sawDone = true
		}
	}
	if keepAlives < 2 || !sawToken || !sawDone {
		t.Fatalf("%d keep-alives, token %v, [DONE] %v", keepAlives, sawToken, sawDone)
	}
}
