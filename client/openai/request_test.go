package openai

import (
	"strings"
	"testing"
)

func TestParseCompletionRequestValid(t *testing.T) {
	req, apiErr := ParseCompletionRequest([]byte(`{"model":"stories","prompt":["Once upon a time"],"max_tokens":20,
		"temperature":0,"top_p":0.5,"seed":-7,"stop":["\n",""],"stream":true,"stream_options":{"include_usage":true},
		"n":1,"user":"u","logprobs":null,"presence_penalty":0,"frequency_penalty":0.0,"echo":false,"best_of":1,
		"suffix":null,"logit_bias":{}}`))
	if apiErr != nil {
		t.Fatalf("valid request rejected: %+v", apiErr)
	}
	if req.Model != "stories" || req.Prompt != "Once upon a time" || req.MaxTokens != 20 || req.Temperature != 0 ||
		req.TopP != 0.5 || req.Seed == nil || *req.Seed != -7 || !req.Stream || !req.IncludeUsage {
		t.Fatalf("fields not decoded: %+v", req)
	}
	if len(req.Stop) != 1 || req.Stop[0] != "\n" {
		t.Fatalf("stop = %q, want the one non-empty sequence", req.Stop)
	}
}

func TestParseCompletionRequestDefaults(t *testing.T) {
	req, apiErr := ParseCompletionRequest([]byte(`{"model":"m","prompt":"x","stop":"END"}`))
	if apiErr != nil {
		t.Fatal(apiErr)
	}
	if req.Temperature != 1 || req.TopP != 1 || req.MaxTokens != 0 || req.Seed != nil || req.Stream || req.Stop[0] != "END" {
		t.Fatalf("defaults wrong: %+v", req)
	}
}

func TestParseChatRequestValid(t *testing.T) {
	req, apiErr := ParseChatRequest([]byte(`{"model":"m","messages":[
		{"role":"developer","content":"Be brief."},
		{"role":"user","name":"bob","content":[{"type":"text","text":"Hello, "},{"type":"text","text":"world"}]},
		{"role":"assistant","content":"Hi","refusal":null,"tool_calls":[]}],
		"max_completion_tokens":5,"tools":[],"tool_choice":"none","response_format":{"type":"text"},
		"store":false,"metadata":{"a":"b"},"parallel_tool_calls":true,"top_logprobs":0,"logprobs":false}`))
	if apiErr != nil {
		t.Fatalf("valid request rejected: %+v", apiErr)
	}
	want := []Message{{"system", "Be brief."}, {"user", "Hello, world"}, {"assistant", "Hi"}}
	if len(req.Messages) != len(want) {
		t.Fatalf("messages = %+v", req.Messages)
	}
	for i := range want {
		if req.Messages[i] != want[i] {
			t.Errorf("message %d = %+v, want %+v", i, req.Messages[i], want[i])
		}
	}
	if req.MaxTokens != 5 {
		t.Errorf("max_completion_tokens not used: %d", req.MaxTokens)
	}
}

func TestParseRequestErrors(t *testing.T) {
	type tc struct {
		name, body, param, code string
	}
	completion := []tc{
		{"not json", `{"model":`, "", "invalid_json"},
		{"not an object", `[1,2]`, "", "invalid_json"},
		{"null body", `null`, "", "invalid_json"},
		{"no model", `{"prompt":"x"}`, "model", "missing_required_parameter"},
		{"model not string", `{"model":3,"prompt":"x"}`, "model", "invalid_type"},
		{"no prompt", `{"model":"m"}`, "prompt", "missing_required_parameter"},
		{"token prompt", `{"model":"m","prompt":[1,2,3]}`, "prompt", "unsupported_value"},
		{"batch prompt", `{"model":"m","prompt":["a","b"]}`, "prompt", "unsupported_value"},
		{"unknown field", `{"model":"m","prompt":"x","foo":1}`, "foo", "unknown_parameter"},
		{"chat field on completions", `{"model":"m","prompt":"x","messages":[]}`, "messages", "unknown_parameter"},
		{"n=2", `{"model":"m","prompt":"x","n":2}`, "n", "unsupported_parameter"},
		{"logprobs", `{"model":"m","prompt":"x","logprobs":6}`, "logprobs", "invalid_value"},
		{"logprobs type", `{"model":"m","prompt":"x","logprobs":true}`, "logprobs", "invalid_type"},
		{"echo", `{"model":"m","prompt":"x","echo":true}`, "echo", "unsupported_parameter"},
		{"best_of", `{"model":"m","prompt":"x","best_of":3}`, "best_of", "unsupported_parameter"},
		{"suffix", `{"model":"m","prompt":"x","suffix":"end"}`, "suffix", "unsupported_parameter"},
		{"presence", `{"model":"m","prompt":"x","presence_penalty":0.5}`, "presence_penalty", "unsupported_parameter"},
		{"frequency", `{"model":"m","prompt":"x","frequency_penalty":-1}`, "frequency_penalty", "unsupported_parameter"},
		{"logit_bias", `{"model":"m","prompt":"x","logit_bias":{"50256":-100}}`, "logit_bias", "unsupported_parameter"},
		{"temperature range", `{"model":"m","prompt":"x","temperature":2.5}`, "temperature", "invalid_value"},
		{"temperature type", `{"model":"m","prompt":"x","temperature":"hot"}`, "temperature", "invalid_type"},
		{"top_p zero", `{"model":"m","prompt":"x","top_p":0}`, "top_p", "invalid_value"},
		{"max_tokens zero", `{"model":"m","prompt":"x","max_tokens":0}`, "max_tokens", "invalid_value"},
		{"max_tokens float", `{"model":"m","prompt":"x","max_tokens":1.5}`, "max_tokens", "invalid_type"},
		{"max_tokens string", `{"model":"m","prompt":"x","max_tokens":"5"}`, "max_tokens", "invalid_type"},
		{"seed overflow", `{"model":"m","prompt":"x","seed":99999999999999999999}`, "seed", "invalid_type"},
		{"five stops", `{"model":"m","prompt":"x","stop":["a","b","c","d","e"]}`, "stop", "invalid_value"},
		{"stop type", `{"model":"m","prompt":"x","stop":7}`, "stop", "invalid_type"},
		{"long stop", `{"model":"m","prompt":"x","stop":"` + strings.Repeat("a", 257) + `"}`, "stop", "invalid_value"},
		{"stream type", `{"model":"m","prompt":"x","stream":"yes"}`, "stream", "invalid_type"},
		{"stream_options without stream", `{"model":"m","prompt":"x","stream_options":{"include_usage":true}}`, "stream_options", "invalid_value"},
		{"stream_options unknown", `{"model":"m","prompt":"x","stream":true,"stream_options":{"x":1}}`, "stream_options.x", "unknown_parameter"},
		{"include_usage type", `{"model":"m","prompt":"x","stream":true,"stream_options":{"include_usage":1}}`, "stream_options.include_usage", "invalid_type"},
		{"user type", `{"model":"m","prompt":"x","user":5}`, "user", "invalid_type"},
	}
	for _, c := range completion {
		t.Run("completion/"+c.name, func(t *testing.T) {
			_, apiErr := ParseCompletionRequest([]byte(c.body))
			checkAPIError(t, apiErr, c.param, c.code)
		})
	}
	chat := []tc{
		{"no messages", `{"model":"m"}`, "messages", "missing_required_parameter"},
		{"empty messages", `{"model":"m","messages":[]}`, "messages", "invalid_value"},
		{"messages not array", `{"model":"m","messages":{}}`, "messages", "invalid_type"},
		{"message not object", `{"model":"m","messages":[1]}`, "messages", "invalid_type"},
		{"null message", `{"model":"m","messages":[null]}`, "messages[0]", "invalid_type"},
		{"bad role", `{"model":"m","messages":[{"role":"king","content":"x"}]}`, "messages[0].role", "invalid_value"},
		{"tool role", `{"model":"m","messages":[{"role":"tool","content":"x"}]}`, "messages[0].role", "unsupported_value"},
		{"no content", `{"model":"m","messages":[{"role":"user"}]}`, "messages[0].content", "missing_required_parameter"},
		{"image part", `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}`, "messages[0].content[0].type", "unsupported_value"},
		{"part extra field", `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a","x":1}]}]}`, "messages[0].content[0].x", "unknown_parameter"},
		{"part without text", `{"model":"m","messages":[{"role":"user","content":[{"type":"text"}]}]}`, "messages[0].content[0].text", "invalid_type"},
		{"message extra field", `{"model":"m","messages":[{"role":"user","content":"x","audio":{}}]}`, "messages[0].audio", "unknown_parameter"},
		{"tool calls", `{"model":"m","messages":[{"role":"assistant","content":"x","tool_calls":[{"id":"1"}]}]}`, "messages[0].tool_calls", "unsupported_parameter"},
		{"tools", `{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function"}]}`, "tools", "unsupported_parameter"},
		{"functions", `{"model":"m","messages":[{"role":"user","content":"x"}],"functions":[{"name":"f"}]}`, "functions", "unsupported_parameter"},
		{"tool_choice", `{"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":"auto"}`, "tool_choice", "unsupported_parameter"},
		{"json mode", `{"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_object"}}`, "response_format", "unsupported_parameter"},
		{"logprobs", `{"model":"m","messages":[{"role":"user","content":"x"}],"logprobs":1}`, "logprobs", "invalid_type"},
		{"top_logprobs alone", `{"model":"m","messages":[{"role":"user","content":"x"}],"top_logprobs":2}`, "top_logprobs", "invalid_value"},
		{"top_logprobs", `{"model":"m","messages":[{"role":"user","content":"x"}],"logprobs":true,"top_logprobs":21}`, "top_logprobs", "invalid_value"},
		{"both max fields", `{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":3,"max_completion_tokens":4}`, "max_tokens", "invalid_value"},
		{"completion field on chat", `{"model":"m","messages":[{"role":"user","content":"x"}],"echo":false}`, "echo", "unknown_parameter"},
		{"metadata type", `{"model":"m","messages":[{"role":"user","content":"x"}],"metadata":[1]}`, "metadata", "invalid_type"},
		{"store type", `{"model":"m","messages":[{"role":"user","content":"x"}],"store":"no"}`, "store", "invalid_type"},
	}
	for _, c := range chat {
		t.Run("chat/"+c.name, func(t *testing.T) {
			_, apiErr := ParseChatRequest([]byte(c.body))
			checkAPIError(t, apiErr, c.param, c.code)
		})
	}
}

func TestParseChatRequestTooManyMessages(t *testing.T) {
	body := `{"model":"m","messages":[` + strings.Repeat(`{"role":"user","content":"x"},`, maxMessages) + `{"role":"user","content":"x"}]}`
	_, apiErr := ParseChatRequest([]byte(body))
	checkAPIError(t, apiErr, "messages", "invalid_value")
}

func checkAPIError(t *testing.T, apiErr *APIError, param, code string) {
	t.Helper()
	if apiErr == nil {
		t.Fatal("request accepted, want an error")
	}
	if apiErr.Status != 400 || apiErr.Type != "invalid_request_error" || apiErr.Param != param || apiErr.Code != code {
		t.Fatalf("error = status %d type %q param %q code %q (%s), want 400 invalid_request_error %q %q",
			apiErr.Status, apiErr.Type, apiErr.Param, apiErr.Code, apiErr.Message, param, code)
	}
	if apiErr.Message == "" {
		t.Fatal("error without a message")
	}
}

var requestSeeds = []string{
	`{"model":"m","prompt":"x"}`,
	`{"model":"m","prompt":["x"],"stop":["a","b"],"stream":true,"stream_options":{"include_usage":true}}`,
	`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"max_completion_tokens":3}`,
	`{"model":"m","messages":[{"role":"system","content":"s"},{"role":"assistant","content":"a","tool_calls":null}],"seed":1,"temperature":0.2,"top_p":0.9}`,
	`{"model":"m","prompt":"x","n":1,"logit_bias":{},"response_format":{"type":"text"},"max_tokens":1e3}`,
	`{"model":"m","messages":[null,{"role":7}]}`,
	`[`, `null`, `{}`, `{"stop":[1]}`, "{\"model\":\"\xff\",\"prompt\":\"\\ud800\"}",
}

func FuzzCompletionRequest(f *testing.F) {
	for _, s := range requestSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, apiErr := ParseCompletionRequest(body)
		if (req == nil) == (apiErr == nil) {
			t.Fatalf("want exactly one of request and error, got %v and %v", req, apiErr)
		}
		if apiErr != nil && (apiErr.Status != 400 || apiErr.Message == "") {
			t.Fatalf("bad error %+v", apiErr)
		}
		if req != nil && (req.Model == "" || len(req.Stop) > maxStopSequences || req.MaxTokens < 0) {
			t.Fatalf("accepted invalid request %+v", req)
		}
	})
}

func FuzzChatRequest(f *testing.F) {
	for _, s := range requestSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, apiErr := ParseChatRequest(body)
		if (req == nil) == (apiErr == nil) {
			t.Fatalf("want exactly one of request and error, got %v and %v", req, apiErr)
		}
		if apiErr != nil && (apiErr.Status != 400 || apiErr.Message == "") {
			t.Fatalf("bad error %+v", apiErr)
		}
		if req != nil {
			if len(req.Messages) == 0 || len(req.Messages) > maxMessages {
				t.Fatalf("accepted %d messages", len(req.Messages))
			}
			for _, m := range req.Messages {
				if m.Role != "system" && m.Role != "user" && m.Role != "assistant" {
					t.Fatalf("accepted role %q", m.Role)
				}
			}
			for _, tmpl := range []Template{TemplatePlain, TemplateChatML, TemplateLlama2} {
				_ = tmpl.Render(req.Messages)
			}
		}
	})
}
