package openai

import "strings"

// Response bodies in OpenAI's shapes (spec/08-client-api.md §3). Fields
// that OpenAI always sends are always sent, null when we have no value.

type usageJSON struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

func usageOf(u Usage) *usageJSON {
	return &usageJSON{PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens, TotalTokens: u.PromptTokens + u.CompletionTokens}
}

type modelJSON struct {
	ID      string `json:"id"`
	Object  string `json:"object"` // "model"
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
	// Name is the catalog's short name of the model, usable as the id.
	Name string `json:"name,omitempty"`
}

type modelListJSON struct {
	Object string      `json:"object"` // "list"
	Data   []modelJSON `json:"data"`
}

// completionJSON is a /v1/completions response or stream chunk
// (object "text_completion" in both cases, as OpenAI sends).
type completionJSON struct {
	ID      string                 `json:"id"`
	Object  string                 `json:"object"`
	Created int64                  `json:"created"`
	Model   string                 `json:"model"`
	Choices []completionChoiceJSON `json:"choices"`
	Usage   *usageJSON             `json:"usage"`
}

type completionChoiceJSON struct {
	Text         string                  `json:"text"`
	Index        int                     `json:"index"`
	Logprobs     *completionLogprobsJSON `json:"logprobs"`
	FinishReason *string                 `json:"finish_reason"`
}

// chatJSON is a /v1/chat/completions response (object "chat.completion").
type chatJSON struct {
	ID      string           `json:"id"`
	Object  string           `json:"object"`
	Created int64            `json:"created"`
	Model   string           `json:"model"`
	Choices []chatChoiceJSON `json:"choices"`
	Usage   *usageJSON       `json:"usage"`
}

type chatChoiceJSON struct {
	Index        int               `json:"index"`
	Message      chatMessageJSON   `json:"message"`
	Logprobs     *chatLogprobsJSON `json:"logprobs"`
	FinishReason string            `json:"finish_reason"`
}

type chatMessageJSON struct {
	Role    string  `json:"role"`
	Content string  `json:"content"`
	Refusal *string `json:"refusal"`
}

// chatChunkJSON is a /v1/chat/completions stream chunk
// (object "chat.completion.chunk"). Usage is always present
// (null on every chunk but the usage chunk that include_usage adds).
type chatChunkJSON struct {
	ID      string                `json:"id"`
	Object  string                `json:"object"`
	Created int64                 `json:"created"`
	Model   string                `json:"model"`
	Choices []chatChunkChoiceJSON `json:"choices"`
	Usage   *usageJSON            `json:"usage"`
}

type chatChunkChoiceJSON struct {
	Index        int               `json:"index"`
	Delta        deltaJSON         `json:"delta"`
	Logprobs     *chatLogprobsJSON `json:"logprobs"`
	FinishReason *string           `json:"finish_reason"`
}

type deltaJSON struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
}

// completionLogprobsJSON is /v1/completions' legacy logprobs object: per
// token its text, log-probability, the top alternatives by text, and its
// byte offset in the choice's text.
type completionLogprobsJSON struct {
	Tokens        []string             `json:"tokens"`
	TokenLogprobs []float64            `json:"token_logprobs"`
	TopLogprobs   []map[string]float64 `json:"top_logprobs"`
	TextOffset    []int                `json:"text_offset"`
}

// chatLogprobsJSON is /v1/chat/completions' logprobs object.
type chatLogprobsJSON struct {
	Content []chatTokenLogprobJSON `json:"content"`
	Refusal *struct{}              `json:"refusal"`
}

type chatTokenLogprobJSON struct {
	Token       string               `json:"token"`
	Logprob     float64              `json:"logprob"`
	Bytes       []int                `json:"bytes"`
	TopLogprobs []chatTopLogprobJSON `json:"top_logprobs"`
}

type chatTopLogprobJSON struct {
	Token   string  `json:"token"`
	Logprob float64 `json:"logprob"`
	Bytes   []int   `json:"bytes"`
}

// byteInts is b as OpenAI's "bytes" (a list of integers, never null).
func byteInts(b []byte) []int {
	out := make([]int, len(b))
	for i, c := range b {
		out[i] = int(c)
	}
	return out
}

// tokenText is a token's bytes as JSON text (invalid UTF-8 replaced; the
// exact bytes are in "bytes").
func tokenText(b []byte) string { return strings.ToValidUTF8(string(b), "\uFFFD") }

// chatLogprobs is the chat logprobs object of lps, nil when there are none.
func chatLogprobs(lps []*Logprob) *chatLogprobsJSON {
	if len(lps) == 0 {
		return nil
	}
	out := &chatLogprobsJSON{Content: make([]chatTokenLogprobJSON, 0, len(lps))}
	for _, lp := range lps {
		e := chatTokenLogprobJSON{Token: tokenText(lp.Bytes), Logprob: lp.Logprob, Bytes: byteInts(lp.Bytes),
			TopLogprobs: make([]chatTopLogprobJSON, 0, len(lp.Top))}
		for _, t := range lp.Top {
			e.TopLogprobs = append(e.TopLogprobs, chatTopLogprobJSON{Token: tokenText(t.Bytes), Logprob: t.Logprob, Bytes: byteInts(t.Bytes)})
		}
		out.Content = append(out.Content, e)
	}
	return out
}

// completionLogprobs is the completions logprobs object of lps, nil when
// there are none. Offsets count bytes from the start of lps' first token.
func completionLogprobs(lps []*Logprob) *completionLogprobsJSON {
	if len(lps) == 0 {
		return nil
	}
	out := &completionLogprobsJSON{}
	off := 0
	for _, lp := range lps {
		out.Tokens = append(out.Tokens, tokenText(lp.Bytes))
		out.TokenLogprobs = append(out.TokenLogprobs, lp.Logprob)
		top := make(map[string]float64, len(lp.Top))
		for _, t := range lp.Top {
			if _, dup := top[tokenText(t.Bytes)]; !dup { // the likelier of two tokens with one text
				top[tokenText(t.Bytes)] = t.Logprob
			}
		}
		out.TopLogprobs = append(out.TopLogprobs, top)
		out.TextOffset = append(out.TextOffset, off)
		off += len(lp.Bytes)
	}
	return out
}
