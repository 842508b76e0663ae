package openai

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
	Text         string    `json:"text"`
	Index        int       `json:"index"`
	Logprobs     *struct{} `json:"logprobs"`
	FinishReason *string   `json:"finish_reason"`
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
	Index        int             `json:"index"`
	Message      chatMessageJSON `json:"message"`
	Logprobs     *struct{}       `json:"logprobs"`
	FinishReason string          `json:"finish_reason"`
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
	Index        int       `json:"index"`
	Delta        deltaJSON `json:"delta"`
	Logprobs     *struct{} `json:"logprobs"`
	FinishReason *string   `json:"finish_reason"`
}

type deltaJSON struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
}
