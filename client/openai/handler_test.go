package openai_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/unfed/unfed/client/openai"
	"github.com/unfed/unfed/client/openai/openaitest"
)

const chatmlTemplate = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"

func testModels() []openai.Model {
	return []openai.Model{
		{ID: "stories", Created: 1700000000},
		{ID: "qwen", OwnedBy: "someone", ChatTemplate: chatmlTemplate},
	}
}

func newServer(t testing.TB, b *openaitest.Backend, opts openai.Options) *httptest.Server {
	t.Helper()
	if b.ModelList == nil {
		b.ModelList = testModels()
	}
	srv := httptest.NewServer(openai.NewHandler(b, nil, opts)) // binds 127.0.0.1
	t.Cleanup(srv.Close)
	return srv
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func do(t *testing.T, method, url, body string, header map[string]string) response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, b}
}

func expectError(t *testing.T, r response, status int, typ, param, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("error content type %q", ct)
	}
	var e errorShape
	decodeStrict(t, r.body, &e, errorKeys...)
	if e.Error.Type != typ || e.Error.Message == "" {
		t.Fatalf("error type %q message %q, want type %q", e.Error.Type, e.Error.Message, typ)
	}
	if got := deref(e.Error.Param); got != param {
		t.Fatalf("param %q, want %q", got, param)
	}
	if got := deref(e.Error.Code); got != code {
		t.Fatalf("code %q, want %q", got, code)
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func TestModels(t *testing.T) {
	srv := newServer(t, &openaitest.Backend{}, openai.Options{})
	r := do(t, "GET", srv.URL+"/v1/models", "", nil)
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	var list modelListShape
	decodeStrict(t, r.body, &list, "object", "data", "data.0.id", "data.0.object", "data.0.created", "data.0.owned_by")
	if list.Object != "list" || len(list.Data) != 2 || list.Data[0].ID != "qwen" || list.Data[1].ID != "stories" {
		t.Fatalf("list = %+v (want sorted by id)", list)
	}
	if d := list.Data[1]; d.Object != "model" || d.Created != 1700000000 || d.OwnedBy != "unfed" {
		t.Fatalf("model entry = %+v", d)
	}
	r = do(t, "GET", srv.URL+"/v1/models/qwen", "", nil)
	if r.status != 200 || !strings.Contains(string(r.body), `"owned_by":"someone"`) {
		t.Fatalf("GET model: %d %s", r.status, r.body)
	}
	expectError(t, do(t, "GET", srv.URL+"/v1/models/nope", "", nil), 404, "invalid_request_error", "model", "model_not_found")
}

func TestHTTPErrors(t *testing.T) {
	srv := newServer(t, &openaitest.Backend{}, openai.Options{MaxBodyBytes: 4096, MaxTokens: 100})
	comp, chat := srv.URL+"/v1/completions", srv.URL+"/v1/chat/completions"
	t.Run("wrong method", func(t *testing.T) {
		r := do(t, "GET", comp, "", nil)
		expectError(t, r, 405, "invalid_request_error", "", "method_not_allowed")
		if r.header.Get("Allow") != "POST" {
			t.Fatalf("Allow = %q", r.header.Get("Allow"))
		}
		expectError(t, do(t, "DELETE", srv.URL+"/v1/models", "", nil), 405, "invalid_request_error", "", "method_not_allowed")
	})
	t.Run("unknown path", func(t *testing.T) {
		expectError(t, do(t, "POST", srv.URL+"/v1/embeddings", "{}", nil), 404, "invalid_request_error", "", "unknown_url")
	})
	t.Run("malformed json", func(t *testing.T) {
		expectError(t, do(t, "POST", chat, `{"model":"stories","messages":[`, nil), 400, "invalid_request_error", "", "invalid_json")
	})
	t.Run("unsupported parameter", func(t *testing.T) {
		expectError(t, do(t, "POST", comp, `{"model":"stories","prompt":"x","n":3}`, nil), 400, "invalid_request_error", "n", "unsupported_parameter")
	})
	t.Run("body too large", func(t *testing.T) {
		big := `{"model":"stories","prompt":"` + strings.Repeat("a", 5000) + `"}`
		expectError(t, do(t, "POST", comp, big, nil), 413, "invalid_request_error", "", "request_too_large")
		// Without a Content-Length the limit applies while reading.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "POST", comp, io.MultiReader(strings.NewReader(big)))
		req.ContentLength = -1
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 413 {
			t.Fatalf("chunked body: status %d, want 413", resp.StatusCode)
		}
	})
	t.Run("unknown model", func(t *testing.T) {
		expectError(t, do(t, "POST", comp, `{"model":"gpt-4","prompt":"x"}`, nil), 404, "invalid_request_error", "model", "model_not_found")
	})
	t.Run("max_tokens over limit", func(t *testing.T) {
		expectError(t, do(t, "POST", comp, `{"model":"stories","prompt":"x","max_tokens":101}`, nil), 400, "invalid_request_error", "max_tokens", "invalid_value")
		expectError(t, do(t, "POST", chat, `{"model":"stories","messages":[{"role":"user","content":"x"}],"max_completion_tokens":101}`, nil),
			400, "invalid_request_error", "max_completion_tokens", "invalid_value")
	})
	t.Run("foreign host", func(t *testing.T) {
		expectError(t, do(t, "GET", srv.URL+"/v1/models", "", map[string]string{"Host": "attacker.example:80"}), 403, "permission_error", "", "forbidden_origin")
	})
	t.Run("foreign origin", func(t *testing.T) {
		expectError(t, do(t, "POST", comp, `{"model":"stories","prompt":"x"}`, map[string]string{"Origin": "https://attacker.example"}), 403, "permission_error", "", "forbidden_origin")
		if r := do(t, "POST", comp, `{"model":"stories","prompt":"x"}`, map[string]string{"Origin": "http://localhost:3000"}); r.status != 200 {
			t.Fatalf("localhost origin refused: %d %s", r.status, r.body)
		}
		if r := do(t, "GET", srv.URL+"/v1/models", "", map[string]string{"Host": "stories.unfed"}); r.status != 200 {
			t.Fatalf(".unfed host refused: %d %s", r.status, r.body)
		}
	})
}

func TestAllowAnyHost(t *testing.T) {
	srv := newServer(t, &openaitest.Backend{}, openai.Options{AllowAnyHost: true})
	if r := do(t, "GET", srv.URL+"/v1/models", "", map[string]string{"Host": "proxy.example"}); r.status != 200 {
		t.Fatalf("status %d with AllowAnyHost", r.status)
	}
}

func TestBackendErrorMapping(t *testing.T) {
	cases := []struct {
		err                  error
		status               int
		typ, compParam, code string
		chatParam            string
	}{
		{fmt.Errorf("path: %w", openai.ErrUnknownModel), 404, "invalid_request_error", "model", "model_not_found", "model"},
		{fmt.Errorf("circuit: %w", openai.ErrUnavailable), 503, "server_error", "", "service_unavailable", ""},
		{fmt.Errorf("tokenize: %w", openai.ErrContextLength), 400, "invalid_request_error", "prompt", "context_length_exceeded", "messages"},
		{errors.New("relay exploded"), 500, "server_error", "", "", ""},
	}
	for _, c := range cases {
		t.Run(c.err.Error(), func(t *testing.T) {
			b := &openaitest.Backend{Err: c.err}
			srv := newServer(t, b, openai.Options{})
			r := do(t, "POST", srv.URL+"/v1/completions", `{"model":"stories","prompt":"x"}`, nil)
			expectError(t, r, c.status, c.typ, c.compParam, c.code)
			// A stream that fails before its first token still gets a status.
			r = do(t, "POST", srv.URL+"/v1/chat/completions", `{"model":"stories","stream":true,"messages":[{"role":"user","content":"x"}]}`, nil)
			expectError(t, r, c.status, c.typ, c.chatParam, c.code)
			if strings.Contains(string(r.body), "exploded") {
				t.Fatal("internal error text leaked to the caller")
			}
		})
	}
}

// TestMidStreamError: after the stream started, an error is sent in-band as
// an OpenAI error event, and the stream then ends with [DONE] so that
// readers waiting for it stop.
func TestMidStreamError(t *testing.T) {
	b := &openaitest.Backend{Err: fmt.Errorf("hop: %w", openai.ErrUnavailable), FailAfter: 2}
	srv := newServer(t, b, openai.Options{})
	r := do(t, "POST", srv.URL+"/v1/completions", `{"model":"stories","prompt":"x","stream":true}`, nil)
	if r.status != 200 {
		t.Fatalf("status %d", r.status)
	}
	body := string(r.body)
	events := strings.Split(strings.TrimSuffix(body, "\n\n"), "\n\n")
	if len(events) < 2 || events[len(events)-1] != "data: [DONE]" {
		t.Fatalf("stream does not end with [DONE]: %q", body)
	}
	last, _ := strings.CutPrefix(events[len(events)-2], "data: ")
	var e errorShape
	decodeStrict(t, []byte(last), &e, errorKeys...)
	if e.Error.Type != "server_error" || deref(e.Error.Code) != "service_unavailable" || strings.Count(body, "[DONE]") != 1 {
		t.Fatalf("stream = %q", body)
	}
}

func TestGenerateRequestFields(t *testing.T) {
	b := &openaitest.Backend{}
	srv := newServer(t, b, openai.Options{MaxTokens: 300})
	do(t, "POST", srv.URL+"/v1/completions", `{"model":"stories","prompt":"Once upon","temperature":0.5,"top_p":0.9,"seed":42,"stop":"x"}`, nil)
	do(t, "POST", srv.URL+"/v1/chat/completions", `{"model":"qwen","messages":[{"role":"user","content":"Hi"}]}`, nil)
	do(t, "POST", srv.URL+"/v1/chat/completions", `{"model":"stories","messages":[{"role":"user","content":"Hi"}],"max_completion_tokens":7}`, nil)
	reqs := b.Requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests", len(reqs))
	}
	c := reqs[0]
	if c.Model != "stories" || c.Prompt != "Once upon" || c.MaxTokens != 16 || c.Temperature != 0.5 || c.TopP != 0.9 ||
		c.Seed == nil || *c.Seed != 42 || len(c.Stop) != 1 || c.Isolation == "" {
		t.Fatalf("completion request = %+v", c)
	}
	if q := reqs[1]; q.Prompt != "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n" || q.MaxTokens != 300 || q.Temperature != 1 || q.TopP != 1 {
		t.Fatalf("chat request (ChatML model) = %+v", q)
	}
	if s := reqs[2]; s.Prompt != "user: Hi\nassistant:" || s.MaxTokens != 7 {
		t.Fatalf("chat request (plain model) = %+v", s)
	}
}

func TestStopSequences(t *testing.T) {
	b := &openaitest.Backend{Pieces: []string{"Hello", " wor", "ld", " EN", "D", " more", " text"}}
	srv := newServer(t, b, openai.Options{})
	r := do(t, "POST", srv.URL+"/v1/completions", `{"model":"stories","prompt":"x","stream":true,"stop":["END","zzz"],
		"stream_options":{"include_usage":true}}`, nil)
	text, finish, usage := completionStream(t, string(r.body), "stories")
	if text != "Hello world " || finish != "stop" {
		t.Fatalf("text %q finish %q", text, finish)
	}
	if usage == nil || usage.CompletionTokens != 5 || usage.TotalTokens != usage.PromptTokens+5 {
		t.Fatalf("usage = %+v: generation must stop at the token that completed the stop", usage)
	}
	// The template's end-of-turn marker stops a chat even when the model
	// spells it out in pieces.
	b.Pieces = []string{"Hi", " there", "<|im_", "end|>", "junk"}
	r = do(t, "POST", srv.URL+"/v1/chat/completions", `{"model":"qwen","messages":[{"role":"user","content":"x"}]}`, nil)
	var c chatShape
	decodeStrict(t, r.body, &c, chatKeys...)
	if c.Choices[0].Message.Content != "Hi there" || c.Choices[0].FinishReason != "stop" {
		t.Fatalf("chat = %s", r.body)
	}
}

func TestMaxTokensLength(t *testing.T) {
	srv := newServer(t, &openaitest.Backend{}, openai.Options{})
	r := do(t, "POST", srv.URL+"/v1/chat/completions", `{"model":"stories","messages":[{"role":"user","content":"x"}],"max_tokens":3}`, nil)
	var c chatShape
	decodeStrict(t, r.body, &c, chatKeys...)
	if c.Choices[0].Message.Content != ", there was" || c.Choices[0].FinishReason != "length" || c.Usage.CompletionTokens != 3 {
		t.Fatalf("chat = %s", r.body)
	}
}

func TestIsolationKeys(t *testing.T) {
	b := &openaitest.Backend{}
	srv := newServer(t, b, openai.Options{})
	chat := func(key, messages string) string {
		do(t, "POST", srv.URL+"/v1/chat/completions", `{"model":"stories","max_tokens":1,"messages":`+messages+`}`,
			map[string]string{"Authorization": "Bearer " + key})
		reqs := b.Requests()
		return reqs[len(reqs)-1].Isolation
	}
	first := `[{"role":"system","content":"s"},{"role":"user","content":"Hi"}]`
	later := `[{"role":"system","content":"s"},{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello"},{"role":"user","content":"More"}]`
	other := `[{"role":"system","content":"s"},{"role":"user","content":"Other"}]`
	a1, a2, a3, b1 := chat("key-a", first), chat("key-a", later), chat("key-a", other), chat("key-b", first)
	if a1 != a2 {
		t.Error("later turns of one conversation got a different isolation key")
	}
	if a1 == a3 {
		t.Error("two conversations share an isolation key")
	}
	if a1 == b1 {
		t.Error("two API keys share an isolation key")
	}
	if strings.Contains(a1, "key-a") || len(a1) != 32 {
		t.Errorf("isolation key %q is not an opaque hash", a1)
	}
	do(t, "POST", srv.URL+"/v1/completions", `{"model":"stories","prompt":"x","max_tokens":1}`, nil)
	do(t, "POST", srv.URL+"/v1/completions", `{"model":"stories","prompt":"x","max_tokens":1}`, nil)
	reqs := b.Requests()
	if reqs[len(reqs)-1].Isolation == reqs[len(reqs)-2].Isolation {
		t.Error("two completion requests share an isolation key")
	}
}

// TestIsolationSource: credentials from a front end (SOCKS) replace the
// API key in the isolation key.
func TestIsolationSource(t *testing.T) {
	b := &openaitest.Backend{ModelList: testModels()}
	h := openai.NewHandler(b, nil, openai.Options{})
	run := func(ctx context.Context) string {
		req := httptest.NewRequestWithContext(ctx, "POST", "http://stories.unfed/v1/chat/completions",
			strings.NewReader(`{"model":"stories","max_tokens":1,"messages":[{"role":"user","content":"Hi"}]}`))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		reqs := b.Requests()
		return reqs[len(reqs)-1].Isolation
	}
	bg := context.Background()
	alice := run(openai.WithIsolationSource(bg, "socks", "alice:pw"))
	if alice != run(openai.WithIsolationSource(bg, "socks", "alice:pw")) {
		t.Error("same SOCKS credentials and conversation gave different keys")
	}
	if alice == run(openai.WithIsolationSource(bg, "socks", "bob:pw")) {
		t.Error("different SOCKS credentials share an isolation key")
	}
	if alice == run(bg) {
		t.Error("SOCKS and API callers share an isolation key")
	}
}

// TestCancelStreaming: when the caller goes away mid-stream, the context
// passed to Generate is canceled.
func TestCancelStreaming(t *testing.T) {
	b := &openaitest.Backend{BlockAfter: 2}
	srv := newServer(t, b, openai.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/v1/chat/completions",
		strings.NewReader(`{"model":"stories","stream":true,"messages":[{"role":"user","content":"x"}]}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "data: ") {
		t.Fatalf("first line %q, %v", line, err)
	}
	cancel()
	waitCanceled(t, b)
}

func TestCancelNonStreaming(t *testing.T) {
	b := &openaitest.Backend{BlockAfter: 1}
	srv := newServer(t, b, openai.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/v1/completions", strings.NewReader(`{"model":"stories","prompt":"x"}`))
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	select {
	case <-b.Started():
	case <-time.After(20 * time.Second):
		t.Fatal("backend never called")
	}
	cancel()
	waitCanceled(t, b)
	if err := <-done; err == nil {
		t.Fatal("canceled request returned a response")
	}
}

func waitCanceled(t *testing.T, b *openaitest.Backend) {
	t.Helper()
	select {
	case <-b.Canceled():
	case <-time.After(20 * time.Second): // a hang guard, not a performance bound
		t.Fatal("backend never saw the cancellation")
	}
}
