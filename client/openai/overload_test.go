package openai_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/unfed/unfed/client/openai"
	"github.com/unfed/unfed/client/openai/openaitest"
)

// TestRetryAfter: a 503 for relays at capacity and a 429 for this proxy's
// own limit carry Retry-After in whole seconds, rounded up; a 503 without a
// hint carries none.
func TestRetryAfter(t *testing.T) {
	cases := []struct {
		err        error
		status     int
		typ, code  string
		retryAfter string
	}{
		{&openai.UnavailableError{Reason: "every party is at capacity", RetryAfter: 2500 * time.Millisecond}, 503, "server_error", "service_unavailable", "3"},
		{fmt.Errorf("client: %w", &openai.UnavailableError{Reason: "busy", RetryAfter: time.Millisecond}), 503, "server_error", "service_unavailable", "1"},
		{&openai.UnavailableError{Reason: "no valid consensus"}, 503, "server_error", "service_unavailable", ""},
		{&openai.RateLimitError{Reason: "32 generations in flight", RetryAfter: 2 * time.Second}, 429, "requests", "rate_limit_exceeded", "2"},
		{fmt.Errorf("queue: %w", openai.ErrRateLimited), 429, "requests", "rate_limit_exceeded", ""},
	}
	for _, c := range cases {
		t.Run(c.err.Error(), func(t *testing.T) {
			srv := newServer(t, &openaitest.Backend{Err: c.err}, openai.Options{})
			for _, stream := range []string{"false", "true"} {
				r := do(t, "POST", srv.URL+"/v1/completions", `{"model":"stories","prompt":"x","stream":`+stream+`}`, nil)
				expectError(t, r, c.status, c.typ, "", c.code)
				if got := r.header.Get("Retry-After"); got != c.retryAfter {
					t.Fatalf("stream %s: Retry-After %q, want %q", stream, got, c.retryAfter)
				}
			}
		})
	}
}

// resolvingBackend is a Backend that knows models it cannot serve now.
type resolvingBackend struct {
	openaitest.Backend
	unservable map[string]string // model id → why it has no circuit now
}

func (b *resolvingBackend) ResolveModel(ctx context.Context, name string) (openai.Model, error) {
	if why, ok := b.unservable[name]; ok {
		return openai.Model{}, &openai.UnavailableError{Reason: why, RetryAfter: 4 * time.Second}
	}
	for _, m := range b.ModelList {
		if m.ID == name {
			return m, nil
		}
	}
	return openai.Model{}, fmt.Errorf("resolve: %w", openai.ErrUnknownModel)
}

// TestModelWithoutPathIs503: a model the backend knows but cannot serve
// now is a 503 with the reason and Retry-After, never a 404; an unknown one
// stays a 404.
func TestModelWithoutPathIs503(t *testing.T) {
	b := &resolvingBackend{Backend: openaitest.Backend{ModelList: testModels()},
		unservable: map[string]string{"tiny": "model tiny has no usable party relay now"}}
	srv := httptest.NewServer(openai.NewHandler(b, nil, openai.Options{}))
	t.Cleanup(srv.Close)
	for path, body := range map[string]string{
		"/v1/completions":      `{"model":"tiny","prompt":"x"}`,
		"/v1/chat/completions": `{"model":"tiny","messages":[{"role":"user","content":"x"}]}`,
	} {
		r := do(t, "POST", srv.URL+path, body, nil)
		expectError(t, r, 503, "server_error", "", "service_unavailable")
		if r.header.Get("Retry-After") != "4" || !strings.Contains(string(r.body), "no usable party relay now") {
			t.Fatalf("%s: %s (Retry-After %q)", path, r.body, r.header.Get("Retry-After"))
		}
	}
	r := do(t, "GET", srv.URL+"/v1/models/tiny", "", nil)
	expectError(t, r, 503, "server_error", "", "service_unavailable")
	r = do(t, "POST", srv.URL+"/v1/completions", `{"model":"nope","prompt":"x"}`, nil)
	expectError(t, r, 404, "invalid_request_error", "model", "model_not_found")
	if r := do(t, "POST", srv.URL+"/v1/completions", `{"model":"stories","prompt":"x"}`, nil); r.status != 200 {
		t.Fatalf("servable model: %d %s", r.status, r.body)
	}
}
