package client

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/unfed/unfed/compute/model"
)

// TestContextLengthExceeded: a max_tokens that does not fit the model's
// context after the prompt, and a prompt that fills it, are 400
// context_length_exceeded naming the numbers, as OpenAI answers; a default
// max_tokens above the context is no error (the generation stops at a full
// context).
func TestContextLengthExceeded(t *testing.T) {
	n := sharedNet(t)
	cfg, err := model.ReadConfig(n.modelPath)
	if err != nil {
		t.Fatal(err)
	}
	ctxLen := cfg.ContextLength
	rc := startClient(t, n, t.TempDir(), func(c *Config) { c.Circuit.Mode = string(ModeAnonymous) })
	post := func(path string, req map[string]any) (int, string, string) {
		t.Helper()
		req["model"], req["temperature"] = n.modelID, 0
		return rc.post(t, path, req)
	}
	// testPrompt is 5 tokens with BOS.
	for _, c := range []struct {
		path string
		req  map[string]any
	}{
		{"/v1/completions", map[string]any{"prompt": testPrompt, "max_tokens": ctxLen}},
		{"/v1/chat/completions", map[string]any{"messages": []map[string]string{{"role": "user", "content": testPrompt}}, "max_tokens": ctxLen + 1}},
	} {
		status, code, msg := post(c.path, c.req)
		want := fmt.Sprintf("maximum context length is %d tokens", ctxLen)
		if status != http.StatusBadRequest || code != "context_length_exceeded" || !strings.Contains(msg, want) ||
			!strings.Contains(msg, fmt.Sprintf("%d for the completion", c.req["max_tokens"])) {
			t.Fatalf("%s max_tokens %v: %d %s %q", c.path, c.req["max_tokens"], status, code, msg)
		}
	}
	long := strings.Repeat("time ", ctxLen+10)
	status, code, msg := post("/v1/completions", map[string]any{"prompt": long, "max_tokens": 1})
	if status != http.StatusBadRequest || code != "context_length_exceeded" || !strings.Contains(msg, fmt.Sprintf("maximum context length is %d tokens", ctxLen)) ||
		!strings.Contains(msg, "your prompt has") && !strings.Contains(msg, "in the prompt") {
		t.Fatalf("long prompt: %d %s %q", status, code, msg)
	}
	// Chat's default max_tokens (4096) is above the context: no error.
	if status, code, msg := post("/v1/chat/completions", map[string]any{"messages": []map[string]string{{"role": "user", "content": testPrompt}}}); status != http.StatusOK {
		t.Fatalf("default max_tokens: %d %s %q", status, code, msg)
	}
}

// post posts req as JSON to path and returns the status and the error's
// code and message (empty for a success).
func (rc *runningClient) post(t *testing.T, path string, req map[string]any) (int, string, string) {
	t.Helper()
	body, _ := json.Marshal(req)
	resp, err := http.Post("http://"+rc.api+path, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	_ = json.Unmarshal(b, &e)
	return resp.StatusCode, e.Error.Code, e.Error.Message
}
