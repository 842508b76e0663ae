package openai_test

// Tests with the real curl binary against the handler on 127.0.0.1.

import (
	"context"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/unfed/unfed/client/openai"
	"github.com/unfed/unfed/client/openai/openaitest"
)

// curl runs curl with args and returns the HTTP status and body.
func curl(t *testing.T, args ...string) (int, string) {
	t.Helper()
	r := curlResponse(t, args...)
	return r.status, string(r.body)
}

// curlResponse runs curl with args and returns status, content type and body.
func curlResponse(t *testing.T, args ...string) response {
	t.Helper()
	path, err := exec.LookPath("curl")
	if err != nil {
		t.Fatalf("curl is required for this test: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args = append([]string{"-sS", "--max-time", "20", "-w", "\n%{content_type}\n%{http_code}"}, args...)
	out, err := exec.CommandContext(ctx, path, args...).Output()
	if err != nil {
		t.Fatalf("curl %v: %v", args, err)
	}
	s := string(out)
	i := strings.LastIndexByte(s, '\n')
	status, err := strconv.Atoi(s[i+1:])
	j := strings.LastIndexByte(s[:max(i, 0)], '\n')
	if err != nil || j < 0 {
		t.Fatalf("curl output %q", s)
	}
	return response{status: status, header: http.Header{"Content-Type": {s[j+1 : i]}}, body: []byte(s[:j])}
}

func postJSON(url, body string) []string {
	return []string{"-H", "Content-Type: application/json", "-H", "Authorization: Bearer sk-test", "-d", body, url}
}

var storyText = strings.Join(openaitest.Story, "")

func TestCurlCompletions(t *testing.T) {
	srv := newServer(t, &openaitest.Backend{}, openai.Options{})
	url := srv.URL + "/v1/completions"

	status, body := curl(t, postJSON(url, `{"model":"stories","prompt":"Once upon a time","max_tokens":100}`)...)
	if status != 200 {
		t.Fatalf("status %d: %s", status, body)
	}
	var c completionShape
	decodeStrict(t, []byte(body), &c, completionKeys...)
	if c.Object != "text_completion" || c.Model != "stories" || !strings.HasPrefix(c.ID, "cmpl-") || c.Created == 0 ||
		len(c.Choices) != 1 || c.Choices[0].Text != storyText || deref(c.Choices[0].FinishReason) != "stop" ||
		string(c.Choices[0].Logprobs) != "null" {
		t.Fatalf("completion = %s", body)
	}
	if c.Usage == nil || c.Usage.PromptTokens != 5 || c.Usage.CompletionTokens != len(openaitest.Story) ||
		c.Usage.TotalTokens != 5+len(openaitest.Story) {
		t.Fatalf("usage = %+v", c.Usage)
	}

	r := curlResponse(t, append([]string{"-N"}, postJSON(url, `{"model":"stories","prompt":["Once upon a time"],"stream":true,
		"stream_options":{"include_usage":true},"max_tokens":4}`)...)...)
	if r.status != 200 || r.header.Get("Content-Type") != "text/event-stream; charset=utf-8" {
		t.Fatalf("status %d, content type %q: %s", r.status, r.header.Get("Content-Type"), r.body)
	}
	body = string(r.body)
	text, finish, usage := completionStream(t, body, "stories")
	if text != ", there was a" || finish != "length" || usage == nil || usage.CompletionTokens != 4 {
		t.Fatalf("stream text %q finish %q usage %+v", text, finish, usage)
	}
}

func TestCurlChatCompletions(t *testing.T) {
	srv := newServer(t, &openaitest.Backend{}, openai.Options{})
	url := srv.URL + "/v1/chat/completions"
	msgs := `"messages":[{"role":"system","content":"You tell stories."},{"role":"user","content":"Once upon a time"}]`

	status, body := curl(t, postJSON(url, `{"model":"qwen",`+msgs+`,"temperature":0,"seed":1}`)...)
	if status != 200 {
		t.Fatalf("status %d: %s", status, body)
	}
	var c chatShape
	decodeStrict(t, []byte(body), &c, chatKeys...)
	ch := c.Choices
	if c.Object != "chat.completion" || c.Model != "qwen" || !strings.HasPrefix(c.ID, "chatcmpl-") || c.Created == 0 ||
		len(ch) != 1 || ch[0].Message.Role != "assistant" || ch[0].Message.Content != storyText ||
		ch[0].FinishReason != "stop" || c.Usage == nil || c.Usage.CompletionTokens != len(openaitest.Story) {
		t.Fatalf("chat = %s", body)
	}

	status, body = curl(t, append([]string{"-N"}, postJSON(url, `{"model":"qwen",`+msgs+`,"stream":true,"stop":[" girl"]}`)...)...)
	if status != 200 {
		t.Fatalf("status %d: %s", status, body)
	}
	text, finish, usage := chatStream(t, body, "qwen")
	if text != ", there was a little" || finish != "stop" || usage != nil {
		t.Fatalf("stream text %q finish %q usage %+v", text, finish, usage)
	}
}

func TestCurlBadRequests(t *testing.T) {
	srv := newServer(t, &openaitest.Backend{}, openai.Options{})
	cases := []struct {
		path, body, param, code string
		status                  int
	}{
		{"/v1/chat/completions", `{"model":"qwen","messages":[{"role":"user","content":"x"}],"logprobs":true,"top_logprobs":21}`, "top_logprobs", "invalid_value", 400},
		{"/v1/chat/completions", `{"model":"qwen","messages":[{"role":"user","content":"x"}],"n":2}`, "n", "unsupported_parameter", 400},
		{"/v1/completions", `{"model":"stories","prompt":"x",}`, "", "invalid_json", 400},
		{"/v1/completions", `{"model":"nope","prompt":"x"}`, "model", "model_not_found", 404},
	}
	for _, c := range cases {
		r := curlResponse(t, postJSON(srv.URL+c.path, c.body)...)
		expectError(t, r, c.status, "invalid_request_error", c.param, c.code)
	}
}
