package openai_test

// Strict decoders for OpenAI response shapes, shared by the handler, curl
// and SOCKS tests: unknown fields fail, and fields OpenAI always sends must
// be present (even when null).

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

type usageShape struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

type completionShape struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	Model   string `json:"model"`
	Choices []struct {
		Text         string          `json:"text"`
		Index        int             `json:"index"`
		Logprobs     json.RawMessage `json:"logprobs"`
		FinishReason *string         `json:"finish_reason"`
	} `json:"choices"`
	Usage *usageShape `json:"usage"`
}

type chatShape struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	Model   string `json:"model"`
	Choices []struct {
		Index   int `json:"index"`
		Message struct {
			Role    string  `json:"role"`
			Content string  `json:"content"`
			Refusal *string `json:"refusal"`
		} `json:"message"`
		Logprobs     json.RawMessage `json:"logprobs"`
		FinishReason string          `json:"finish_reason"`
	} `json:"choices"`
	Usage *usageShape `json:"usage"`
}

type chatChunkShape struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	Model   string `json:"model"`
	Choices []struct {
		Index int `json:"index"`
		Delta struct {
			Role    string  `json:"role"`
			Content *string `json:"content"`
		} `json:"delta"`
		Logprobs     json.RawMessage `json:"logprobs"`
		FinishReason *string         `json:"finish_reason"`
	} `json:"choices"`
	Usage *usageShape `json:"usage"`
}

type errorShape struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

type modelListShape struct {
	Object string `json:"object"`
	Data   []struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		OwnedBy string `json:"owned_by"`
	} `json:"data"`
}

// decodeStrict decodes raw into v rejecting unknown fields, and checks that
// each of the dotted key paths is present.
func decodeStrict(t *testing.T, raw []byte, v any, keys ...string) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	if dec.More() {
		t.Fatalf("trailing data after JSON: %s", raw)
	}
	for _, k := range keys {
		if !hasKey(raw, strings.Split(k, ".")) {
			t.Fatalf("key %q missing in %s", k, raw)
		}
	}
}

// hasKey follows a key path; a numeric-free path component "0" indexes the
// first array element.
func hasKey(raw []byte, path []string) bool {
	if len(path) == 0 {
		return true
	}
	if path[0] == "0" {
		var arr []json.RawMessage
		if json.Unmarshal(raw, &arr) != nil || len(arr) == 0 {
			return false
		}
		return hasKey(arr[0], path[1:])
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return false
	}
	v, ok := m[path[0]]
	return ok && hasKey(v, path[1:])
}

var (
	completionKeys = []string{"id", "object", "created", "model", "choices", "usage",
		"choices.0.text", "choices.0.index", "choices.0.logprobs", "choices.0.finish_reason"}
	chatKeys = []string{"id", "object", "created", "model", "choices", "usage", "choices.0.index",
		"choices.0.message.role", "choices.0.message.content", "choices.0.logprobs", "choices.0.finish_reason"}
	chunkKeys     = []string{"id", "object", "created", "model", "choices"}
	chatDeltaKeys = []string{"choices.0.index", "choices.0.delta", "choices.0.logprobs", "choices.0.finish_reason"}
	compDeltaKeys = []string{"choices.0.text", "choices.0.index", "choices.0.logprobs", "choices.0.finish_reason"}
	errorKeys     = []string{"error.message", "error.type", "error.param", "error.code"}
)

// sseEvents splits an SSE body into its data payloads and checks the
// framing: every event is one "data: " line, the last one is [DONE].
func sseEvents(t *testing.T, body string) [][]byte {
	t.Helper()
	if !strings.HasSuffix(body, "data: [DONE]\n\n") {
		t.Fatalf("stream does not end with data: [DONE]: %q", body)
	}
	var out [][]byte
	for _, ev := range strings.Split(strings.TrimSuffix(body, "\n\n"), "\n\n") {
		data, ok := strings.CutPrefix(ev, "data: ")
		if !ok || strings.Contains(data, "\n") {
			t.Fatalf("bad SSE event %q", ev)
		}
		out = append(out, []byte(data))
	}
	return out[:len(out)-1]
}

// completionStream checks a /v1/completions stream and returns its text,
// finish reason and usage (nil when not asked for).
func completionStream(t *testing.T, body, model string) (string, string, *usageShape) {
	t.Helper()
	var text strings.Builder
	finish := ""
	var usage *usageShape
	id := ""
	for i, ev := range sseEvents(t, body) {
		var c completionShape
		decodeStrict(t, ev, &c, chunkKeys...)
		if c.Object != "text_completion" || c.Model != model || c.Created == 0 || !strings.HasPrefix(c.ID, "cmpl-") {
			t.Fatalf("chunk %d header wrong: %s", i, ev)
		}
		if id != "" && c.ID != id {
			t.Fatalf("id changed within a stream")
		}
		id = c.ID
		if c.Usage != nil {
			if len(c.Choices) != 0 || finish == "" {
				t.Fatalf("usage chunk must come after the finish chunk and have no choices: %s", ev)
			}
			usage = c.Usage
			continue
		}
		if len(c.Choices) != 1 || finish != "" {
			t.Fatalf("chunk %d after finish or without one choice: %s", i, ev)
		}
		decodeStrict(t, ev, &completionShape{}, compDeltaKeys...)
		text.WriteString(c.Choices[0].Text)
		if c.Choices[0].FinishReason != nil {
			finish = *c.Choices[0].FinishReason
		}
	}
	if finish == "" {
		t.Fatal("stream without finish_reason")
	}
	return text.String(), finish, usage
}

// chatStream checks a /v1/chat/completions stream likewise.
func chatStream(t *testing.T, body, model string) (string, string, *usageShape) {
	t.Helper()
	var text strings.Builder
	finish := ""
	var usage *usageShape
	for i, ev := range sseEvents(t, body) {
		var c chatChunkShape
		decodeStrict(t, ev, &c, append(chunkKeys, "usage")...)
		if c.Object != "chat.completion.chunk" || c.Model != model || c.Created == 0 || !strings.HasPrefix(c.ID, "chatcmpl-") {
			t.Fatalf("chunk %d header wrong: %s", i, ev)
		}
		if c.Usage != nil {
			if len(c.Choices) != 0 || finish == "" {
				t.Fatalf("usage chunk must come after the finish chunk and have no choices: %s", ev)
			}
			usage = c.Usage
			continue
		}
		if len(c.Choices) != 1 || finish != "" {
			t.Fatalf("chunk %d after finish or without one choice: %s", i, ev)
		}
		decodeStrict(t, ev, &chatChunkShape{}, chatDeltaKeys...)
		d := c.Choices[0].Delta
		if (i == 0) != (d.Role == "assistant") {
			t.Fatalf("role must be in the first delta only: chunk %d %s", i, ev)
		}
		if d.Content != nil {
			text.WriteString(*d.Content)
		}
		if c.Choices[0].FinishReason != nil {
			finish = *c.Choices[0].FinishReason
		}
	}
	if finish == "" {
		t.Fatal("stream without finish_reason")
	}
	return text.String(), finish, usage
}
