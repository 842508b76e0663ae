package openai

// Request decoding and validation (spec/08-client-api.md §3). A body is
// decoded into a map of raw fields first, so that every field is checked by
// name: an unknown field, or a known but unsupported one set to anything
// other than its neutral value, is a 400 naming the field, never silence.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Limits on what one request may ask for.
const (
	maxStopSequences = 4    // as OpenAI
	maxStopBytes     = 256  // per stop sequence
	maxMessages      = 1024 // per chat request
	maxModelIDBytes  = 256
)

// params are the sampling parameters shared by both endpoints.
type params struct {
	Model        string
	MaxTokens    int // 0 until defaults are applied
	Temperature  float64
	TopP         float64
	Seed         *int64
	Stop         []string
	Stream       bool
	IncludeUsage bool
	// Logprobs asks for each generated token's log-probability, and
	// TopLogprobs for that many most likely alternatives at each step.
	Logprobs    bool
	TopLogprobs int
	// MaxTokensSet: the caller set the token limit (not a default).
	MaxTokensSet bool
	maxField     string // the field that carried the token limit
}

// Logprob limits, as OpenAI's: /v1/completions' logprobs up to 5,
// /v1/chat/completions' top_logprobs up to 20.
const (
	maxCompletionLogprobs = 5
	maxChatTopLogprobs    = 20
)

// CompletionRequest is a validated POST /v1/completions body.
type CompletionRequest struct {
	params
	Prompt string
}

// ChatRequest is a validated POST /v1/chat/completions body.
type ChatRequest struct {
	params
	Messages []Message
}

// Message is one chat message with its text content.
type Message struct {
	Role    string // system, user or assistant ("developer" is read as system)
	Content string
}

type fields map[string]json.RawMessage

// Fields each endpoint understands. Value true: supported; false: accepted
// only at its neutral value (checked in neutral).
var (
	commonFields = map[string]bool{
		"model": true, "max_tokens": true, "temperature": true, "top_p": true,
		"seed": true, "stop": true, "stream": true, "stream_options": true,
		"user": true, "n": false, "logprobs": true, "presence_penalty": false,
		"frequency_penalty": false, "logit_bias": false,
	}
	completionFields = map[string]bool{
		"prompt": true, "echo": false, "best_of": false, "suffix": false,
	}
	chatFields = map[string]bool{
		"messages": true, "max_completion_tokens": true, "store": true, "metadata": true,
		"parallel_tool_calls": true, "top_logprobs": true, "tools": false,
		"tool_choice": false, "functions": false, "function_call": false,
		"response_format": false,
	}
)

// ParseCompletionRequest decodes and validates a /v1/completions body.
func ParseCompletionRequest(body []byte) (*CompletionRequest, *APIError) {
	f, apiErr := decodeFields(body, completionFields)
	if apiErr != nil {
		return nil, apiErr
	}
	req := &CompletionRequest{}
	if apiErr := f.params(&req.params, "max_tokens"); apiErr != nil {
		return nil, apiErr
	}
	raw, ok := f["prompt"]
	if !ok || isNull(raw) {
		return nil, invalid("prompt", "missing_required_parameter", "you must provide a prompt parameter")
	}
	prompt, apiErr := parsePrompt(raw)
	if apiErr != nil {
		return nil, apiErr
	}
	req.Prompt = prompt
	// logprobs is a count here: the alternatives per token (0..5); set at
	// all, it asks for the sampled tokens' log-probabilities.
	if n, ok, apiErr := f.integer("logprobs"); apiErr != nil {
		return nil, apiErr
	} else if ok {
		if n < 0 || n > maxCompletionLogprobs {
			return nil, invalid("logprobs", "invalid_value", fmt.Sprintf("logprobs must be between 0 and %d", maxCompletionLogprobs))
		}
		req.Logprobs, req.TopLogprobs = true, int(n)
	}
	return req, nil
}

// ParseChatRequest decodes and validates a /v1/chat/completions body.
func ParseChatRequest(body []byte) (*ChatRequest, *APIError) {
	f, apiErr := decodeFields(body, chatFields)
	if apiErr != nil {
		return nil, apiErr
	}
	req := &ChatRequest{}
	maxField := "max_tokens"
	if raw, ok := f["max_completion_tokens"]; ok && !isNull(raw) {
		if mt, ok := f["max_tokens"]; ok && !isNull(mt) {
			return nil, invalid("max_tokens", "invalid_value", "max_tokens and max_completion_tokens cannot both be set")
		}
		maxField = "max_completion_tokens"
	}
	if apiErr := f.params(&req.params, maxField); apiErr != nil {
		return nil, apiErr
	}
	for _, name := range []string{"store", "parallel_tool_calls"} {
		if _, _, apiErr := f.boolean(name); apiErr != nil {
			return nil, apiErr
		}
	}
	if raw, ok := f["metadata"]; ok && !isNull(raw) {
		var m map[string]string
		if json.Unmarshal(raw, &m) != nil {
			return nil, invalid("metadata", "invalid_type", "metadata must be an object of strings")
		}
	}
	raw, ok := f["messages"]
	if !ok || isNull(raw) {
		return nil, invalid("messages", "missing_required_parameter", "you must provide a messages parameter")
	}
	msgs, apiErr := parseMessages(raw)
	if apiErr != nil {
		return nil, apiErr
	}
	req.Messages = msgs
	lp, _, apiErr := f.boolean("logprobs")
	if apiErr != nil {
		return nil, apiErr
	}
	req.Logprobs = lp
	if n, ok, apiErr := f.integer("top_logprobs"); apiErr != nil {
		return nil, apiErr
	} else if ok {
		switch {
		case n < 0 || n > maxChatTopLogprobs:
			return nil, invalid("top_logprobs", "invalid_value", fmt.Sprintf("top_logprobs must be between 0 and %d", maxChatTopLogprobs))
		case n > 0 && !lp:
			return nil, invalid("top_logprobs", "invalid_value", "top_logprobs requires logprobs to be true")
		}
		req.TopLogprobs = int(n)
	}
	return req, nil
}

// decodeFields parses body as one JSON object and rejects unknown fields and
// unsupported fields set to non-neutral values.
func decodeFields(body []byte, endpoint map[string]bool) (fields, *APIError) {
	var f fields
	if err := json.Unmarshal(body, &f); err != nil || f == nil {
		return nil, invalid("", "invalid_json", "We could not parse the JSON body of your request: expected a JSON object.")
	}
	for name, raw := range f {
		supported, known := commonFields[name]
		if !known {
			supported, known = endpoint[name]
		}
		if !known {
			return nil, invalid(name, "unknown_parameter", fmt.Sprintf("Unrecognized request argument supplied: %.64s", name))
		}
		if !supported && !neutral(name, raw) {
			return nil, invalid(name, "unsupported_parameter", fmt.Sprintf("%s is not supported by this server; leave it unset or at its default", name))
		}
	}
	return f, nil
}

// neutral reports whether an unsupported field holds a value that asks for
// nothing beyond what the server does anyway.
func neutral(name string, raw json.RawMessage) bool {
	if isNull(raw) {
		return true
	}
	switch name {
	case "n", "best_of":
		return isJSON(raw, "1")
	case "presence_penalty", "frequency_penalty":
		var v float64
		return json.Unmarshal(raw, &v) == nil && v == 0
	case "echo":
		return isJSON(raw, "false")
	case "logit_bias":
		var m map[string]json.RawMessage
		return json.Unmarshal(raw, &m) == nil && len(m) == 0
	case "tools", "functions":
		var a []json.RawMessage
		return json.Unmarshal(raw, &a) == nil && len(a) == 0
	case "tool_choice", "function_call":
		return isJSON(raw, `"none"`)
	case "suffix":
		return isJSON(raw, `""`)
	case "response_format":
		var rf map[string]json.RawMessage
		if json.Unmarshal(raw, &rf) != nil || len(rf) != 1 {
			return false
		}
		return isJSON(rf["type"], `"text"`)
	}
	return false
}

func isNull(raw json.RawMessage) bool { return isJSON(raw, "null") }

func isJSON(raw json.RawMessage, lit string) bool {
	return string(bytes.TrimSpace(raw)) == lit
}

// params fills the shared sampling parameters; maxField names the field
// that carries the token limit.
func (f fields) params(p *params, maxField string) *APIError {
	p.maxField = maxField
	model, ok, apiErr := f.str("model")
	if apiErr != nil {
		return apiErr
	}
	if !ok || model == "" {
		return invalid("model", "missing_required_parameter", "you must provide a model parameter")
	}
	if len(model) > maxModelIDBytes {
		return invalid("model", "invalid_value", "model id is too long")
	}
	p.Model = model
	if _, _, apiErr := f.str("user"); apiErr != nil {
		return apiErr
	}
	if n, ok, apiErr := f.integer(maxField); apiErr != nil {
		return apiErr
	} else if ok {
		if n < 1 || n > 1<<30 {
			return invalid(maxField, "invalid_value", maxField+" must be at least 1")
		}
		p.MaxTokens, p.MaxTokensSet = int(n), true
	}
	p.Temperature = 1
	if t, ok, apiErr := f.num("temperature"); apiErr != nil {
		return apiErr
	} else if ok {
		if t < 0 || t > 2 {
			return invalid("temperature", "invalid_value", "temperature must be between 0 and 2")
		}
		p.Temperature = t
	}
	p.TopP = 1
	if t, ok, apiErr := f.num("top_p"); apiErr != nil {
		return apiErr
	} else if ok {
		if t <= 0 || t > 1 {
			return invalid("top_p", "invalid_value", "top_p must be greater than 0 and at most 1")
		}
		p.TopP = t
	}
	if s, ok, apiErr := f.integer("seed"); apiErr != nil {
		return apiErr
	} else if ok {
		p.Seed = &s
	}
	stop, apiErr := parseStop(f["stop"])
	if apiErr != nil {
		return apiErr
	}
	p.Stop = stop
	stream, _, apiErr := f.boolean("stream")
	if apiErr != nil {
		return apiErr
	}
	p.Stream = stream
	if raw, ok := f["stream_options"]; ok && !isNull(raw) {
		if !p.Stream {
			return invalid("stream_options", "invalid_value", "stream_options is only allowed when stream is true")
		}
		var so fields
		if json.Unmarshal(raw, &so) != nil || so == nil {
			return invalid("stream_options", "invalid_type", "stream_options must be an object")
		}
		for name := range so {
			if name != "include_usage" {
				return invalid("stream_options."+name, "unknown_parameter", fmt.Sprintf("Unrecognized stream option supplied: %.64s", name))
			}
		}
		inc, _, apiErr := so.boolean("include_usage")
		if apiErr != nil {
			apiErr.Param = "stream_options.include_usage"
			return apiErr
		}
		p.IncludeUsage = inc
	}
	return nil
}

func (f fields) str(name string) (string, bool, *APIError) {
	raw, ok := f[name]
	if !ok || isNull(raw) {
		return "", false, nil
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false, invalid(name, "invalid_type", name+" must be a string")
	}
	return s, true, nil
}

func (f fields) boolean(name string) (bool, bool, *APIError) {
	raw, ok := f[name]
	if !ok || isNull(raw) {
		return false, false, nil
	}
	var b bool
	if json.Unmarshal(raw, &b) != nil {
		return false, false, invalid(name, "invalid_type", name+" must be a boolean")
	}
	return b, true, nil
}

func (f fields) num(name string) (float64, bool, *APIError) {
	raw, ok := f[name]
	if !ok || isNull(raw) {
		return 0, false, nil
	}
	var v float64
	if !isNumber(raw) || json.Unmarshal(raw, &v) != nil {
		return 0, false, invalid(name, "invalid_type", name+" must be a number")
	}
	return v, true, nil
}

func (f fields) integer(name string) (int64, bool, *APIError) {
	raw, ok := f[name]
	if !ok || isNull(raw) {
		return 0, false, nil
	}
	if !isNumber(raw) {
		return 0, false, invalid(name, "invalid_type", name+" must be an integer")
	}
	v, err := strconv.ParseInt(string(bytes.TrimSpace(raw)), 10, 64)
	if err != nil {
		return 0, false, invalid(name, "invalid_type", name+" must be an integer")
	}
	return v, true, nil
}

func isNumber(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) > 0 && (t[0] == '-' || (t[0] >= '0' && t[0] <= '9'))
}

// parseStop reads stop: null, a string, or an array of up to four strings.
func parseStop(raw json.RawMessage) ([]string, *APIError) {
	if raw == nil || isNull(raw) {
		return nil, nil
	}
	var stops []string
	var one string
	if json.Unmarshal(raw, &one) == nil {
		stops = []string{one}
	} else if json.Unmarshal(raw, &stops) != nil {
		return nil, invalid("stop", "invalid_type", "stop must be a string or an array of strings")
	}
	if len(stops) > maxStopSequences {
		return nil, invalid("stop", "invalid_value", fmt.Sprintf("stop may hold at most %d sequences", maxStopSequences))
	}
	out := stops[:0]
	for _, s := range stops {
		if len(s) > maxStopBytes || !utf8.ValidString(s) {
			return nil, invalid("stop", "invalid_value", fmt.Sprintf("each stop sequence must be valid text of at most %d bytes", maxStopBytes))
		}
		if s != "" { // an empty stop sequence would match everywhere; OpenAI ignores it
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// parsePrompt reads prompt: a string or an array of exactly one string.
func parsePrompt(raw json.RawMessage) (string, *APIError) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var arr []json.RawMessage
	if json.Unmarshal(raw, &arr) != nil {
		return "", invalid("prompt", "invalid_type", "prompt must be a string or an array of one string")
	}
	if len(arr) != 1 {
		return "", invalid("prompt", "unsupported_value", "prompt arrays must hold exactly one string (batching is not supported)")
	}
	if json.Unmarshal(arr[0], &s) != nil {
		return "", invalid("prompt", "unsupported_value", "prompt must be text; token id prompts are not supported")
	}
	return s, nil
}

// Fields a chat message may carry.
var messageFields = map[string]bool{"role": true, "content": true, "name": true, "refusal": true, "tool_calls": true}

func parseMessages(raw json.RawMessage) ([]Message, *APIError) {
	var arr []fields
	if json.Unmarshal(raw, &arr) != nil {
		return nil, invalid("messages", "invalid_type", "messages must be an array of message objects")
	}
	if len(arr) == 0 {
		return nil, invalid("messages", "invalid_value", "messages must not be empty")
	}
	if len(arr) > maxMessages {
		return nil, invalid("messages", "invalid_value", fmt.Sprintf("at most %d messages are supported", maxMessages))
	}
	msgs := make([]Message, 0, len(arr))
	for i, m := range arr {
		msg, apiErr := parseMessage(m, fmt.Sprintf("messages[%d]", i))
		if apiErr != nil {
			return nil, apiErr
		}
		msgs = append(msgs, msg)
	}
	return msgs, nil
}

func parseMessage(m fields, param string) (Message, *APIError) {
	if m == nil {
		return Message{}, invalid(param, "invalid_type", param+" must be an object")
	}
	for name, raw := range m {
		if !messageFields[name] {
			return Message{}, invalid(param+"."+name, "unknown_parameter", fmt.Sprintf("Unrecognized message field supplied: %.64s", name))
		}
		if name == "tool_calls" && !isNull(raw) && !isJSON(raw, "[]") {
			return Message{}, invalid(param+".tool_calls", "unsupported_parameter", "tool calls are not supported")
		}
	}
	for _, name := range []string{"name", "refusal"} {
		if _, _, apiErr := m.str(name); apiErr != nil {
			apiErr.Param = param + "." + name
			return Message{}, apiErr
		}
	}
	role, _, apiErr := m.str("role")
	if apiErr != nil {
		apiErr.Param = param + ".role"
		return Message{}, apiErr
	}
	switch role {
	case "system", "user", "assistant":
	case "developer":
		role = "system"
	case "tool", "function":
		return Message{}, invalid(param+".role", "unsupported_value", "tool and function messages are not supported")
	default:
		return Message{}, invalid(param+".role", "invalid_value", "role must be one of system, developer, user, assistant")
	}
	content, apiErr := parseContent(m["content"], param+".content")
	if apiErr != nil {
		return Message{}, apiErr
	}
	return Message{Role: role, Content: content}, nil
}

// parseContent reads a message's content: a string or an array of text
// parts, which are joined without separator as OpenAI does.
func parseContent(raw json.RawMessage, param string) (string, *APIError) {
	if raw == nil || isNull(raw) {
		return "", invalid(param, "missing_required_parameter", param+" is required")
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var parts []fields
	if json.Unmarshal(raw, &parts) != nil {
		return "", invalid(param, "invalid_type", param+" must be a string or an array of content parts")
	}
	var buf []byte
	for i, p := range parts {
		pp := fmt.Sprintf("%s[%d]", param, i)
		if p == nil {
			return "", invalid(pp, "invalid_type", pp+" must be an object")
		}
		typ, _, apiErr := p.str("type")
		if apiErr != nil {
			apiErr.Param = pp + ".type"
			return "", apiErr
		}
		if typ != "text" {
			return "", invalid(pp+".type", "unsupported_value", "only text content parts are supported")
		}
		for name := range p {
			if name != "type" && name != "text" {
				return "", invalid(pp+"."+name, "unknown_parameter", fmt.Sprintf("Unrecognized content part field supplied: %.64s", name))
			}
		}
		text, ok, apiErr := p.str("text")
		if apiErr != nil || !ok {
			return "", invalid(pp+".text", "invalid_type", pp+".text must be a string")
		}
		buf = append(buf, text...)
	}
	return string(buf), nil
}
