package openai

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Backend is the seam between the HTTP front end and the overlay: the client
// proxy implements it with circuits, tests with openaitest.Backend.
// Implementations must be safe for concurrent use.
type Backend interface {
	// Models lists the models that can be served now, that is the models in
	// the verified consensus for which the consensus offers a path. Relays
	// that are only busy (at capacity) count as offering one.
	Models(ctx context.Context) ([]Model, error)

	// Generate runs one completion of req.Prompt and calls emit once per
	// sampled token, in order. It stops at the first of: an end-of-generation
	// token (FinishReason "stop"), req.MaxTokens tokens or a full context
	// (FinishReason "length"), an error from emit, or ctx being canceled.
	//
	// When emit returns an error Generate must stop at once and return that
	// error (wrapped with %w is fine) together with the Usage so far.
	// When ctx is canceled it must tear its circuit down and return an error
	// that wraps ctx.Err(). The typed errors below (ErrUnknownModel,
	// ErrUnavailable, ErrRateLimited, ErrContextLength), wrapped with %w,
	// select the HTTP status; anything else is a 500.
	Generate(ctx context.Context, req GenerateRequest, emit func(Token) error) (Usage, error)
}

// ModelResolver is implemented by a Backend that can tell a model that
// exists but cannot be served now (no path in the consensus: 503) from one
// that does not exist (404). Without it the handler resolves a name against
// Models and answers 404 for any name not listed.
type ModelResolver interface {
	// ResolveModel returns the model a request names, an error wrapping
	// ErrUnknownModel when there is no such model, or one wrapping
	// ErrUnavailable (an *UnavailableError with the reason) when the model
	// exists but has no circuit now.
	ResolveModel(ctx context.Context, name string) (Model, error)
}

// Model describes one servable model.
type Model struct {
	// ID is the model id callers put in the "model" field.
	ID string
	// Created is the Unix time reported in /v1/models; zero reports 0.
	Created int64
	// OwnedBy is reported in /v1/models; empty reports "unfed".
	OwnedBy string
	// Name is the model's short human name from the catalog, reported in
	// /v1/models; empty when it has none.
	Name string
	// ChatTemplate is the model's chat template text (GGUF
	// tokenizer.chat_template), empty when the model has none. It is run as
	// Jinja (jinja.go), with the marker formats of template.go as fallback.
	ChatTemplate string
	// BOSText and EOSText are the text of the model's BOS and EOS tokens,
	// the bos_token and eos_token of its chat template.
	BOSText, EOSText string
}

// GenerateRequest is one validated completion request.
type GenerateRequest struct {
	// Model is the model id, one of Backend.Models.
	Model string
	// Prompt is the text to continue; chat requests arrive already rendered
	// through the chat template. The backend tokenizes it and prepends BOS
	// as it does for any prompt.
	Prompt string
	// MaxTokens is the most tokens to generate, at least 1.
	MaxTokens int
	// MaxTokensSet says the caller asked for MaxTokens (OpenAI's rule then
	// applies: prompt + MaxTokens beyond the context is ErrContextLength);
	// a default MaxTokens only ends the generation at a full context.
	MaxTokensSet bool
	// Logprobs asks for every token's Logprob, with TopLogprobs (0..20)
	// alternatives each.
	Logprobs    bool
	TopLogprobs int
	// Temperature is in [0, 2]; 0 means greedy decoding.
	Temperature float64
	// TopP is in (0, 1]; 1 disables nucleus sampling.
	TopP float64
	// Seed makes sampling reproducible when set.
	Seed *int64
	// Stop lists the caller's stop sequences. The front end applies them to
	// the text stream itself; they are passed on for information only.
	Stop []string
	// Accepted, when set, is called once by a backend that has validated
	// the request and opened its circuit, before the prompt crosses it: a
	// stream sends its headers then, and keeps the connection alive until
	// the first token (spec/08-client-api.md §3.2). Errors after it reach a
	// stream in-band.
	Accepted func()
	// Isolation is the circuit isolation key (spec/08-client-api.md §6).
	// Requests with different keys must never share a circuit; requests
	// with equal keys may. It is an opaque hash, never a credential.
	Isolation string
}

// Token is one generated token.
type Token struct {
	// Text is the token's text, a complete UTF-8 piece (a backend holds back
	// bytes of an incomplete character until the character is complete).
	Text string
	// ID is the token id in the model's vocabulary.
	ID int
	// Logprob is set when the request asked for logprobs. With logprobs a
	// backend emits every sampled token, with empty Text when the token
	// completes no character yet.
	Logprob *Logprob
}

// Logprob is a sampled token's natural-log probability under the model's
// distribution at that step (the log-softmax of its logits, before
// temperature or top-p), with the most likely tokens at that step.
type Logprob struct {
	TokenLogprob
	// Top are the most likely tokens, most likely first (ties: lower id).
	Top []TokenLogprob
}

// TokenLogprob is one token and its log-probability.
type TokenLogprob struct {
	ID int
	// Bytes are what the token decodes to on its own (spec/06 §3.7).
	Bytes   []byte
	Logprob float64
}

// Usage counts the tokens of one generation.
type Usage struct {
	PromptTokens     int
	CompletionTokens int
	// FinishReason is "stop" (end-of-generation token) or "length".
	FinishReason string
}

// Typed backend errors. Backends wrap them with %w; the handler maps them
// to HTTP statuses (spec/08-client-api.md §5).
var (
	// ErrUnknownModel: there is no such model (not in the network's
	// catalog, or not one the backend holds). A model that exists but
	// cannot be served now is ErrUnavailable instead. 404.
	ErrUnknownModel = errors.New("openai: unknown model")
	// ErrUnavailable: no circuit could be built or the network is
	// overloaded; the caller may retry later. 503.
	ErrUnavailable = errors.New("openai: no circuit available")
	// ErrContextLength: the prompt does not fit the model's context. 400.
	// A *ContextLengthError carries the numbers.
	ErrContextLength = errors.New("openai: context length exceeded")
	// ErrRateLimited: this proxy runs as many generations as it allows
	// and as many wait; the caller may retry later. 429.
	ErrRateLimited = errors.New("openai: too many generations in flight")
)

// UnavailableError is ErrUnavailable with a reason the caller may read (it
// must hold nothing private: no addresses, keys or prompts) and, when
// known, when to try again.
type UnavailableError struct {
	Reason string
	// RetryAfter, when positive, becomes the Retry-After header.
	RetryAfter time.Duration
}

func (e *UnavailableError) Error() string { return ErrUnavailable.Error() + ": " + e.Reason }

// Unwrap makes errors.Is(err, ErrUnavailable) hold.
func (e *UnavailableError) Unwrap() error { return ErrUnavailable }

// RateLimitError is ErrRateLimited with a reason and when to try again.
type RateLimitError struct {
	Reason string
	// RetryAfter, when positive, becomes the Retry-After header.
	RetryAfter time.Duration
}

func (e *RateLimitError) Error() string { return ErrRateLimited.Error() + ": " + e.Reason }

// Unwrap makes errors.Is(err, ErrRateLimited) hold.
func (e *RateLimitError) Unwrap() error { return ErrRateLimited }

// ContextLengthError is ErrContextLength with the numbers, which the 400
// tells the caller (as OpenAI's does).
type ContextLengthError struct {
	// Context is the model's (or the circuit's) context length in tokens.
	Context int
	// Prompt is the prompt's length in tokens.
	Prompt int
	// MaxTokens is the completion the caller asked for (0: not set).
	MaxTokens int
}

func (e *ContextLengthError) Error() string {
	if e.MaxTokens > 0 {
		return fmt.Sprintf("This model's maximum context length is %d tokens. However, you requested %d tokens (%d in the prompt, %d for the completion). Please reduce the prompt or max_tokens.",
			e.Context, e.Prompt+e.MaxTokens, e.Prompt, e.MaxTokens)
	}
	return fmt.Sprintf("This model's maximum context length is %d tokens. However, your prompt has %d tokens, which leaves no room for a completion. Please reduce the prompt.",
		e.Context, e.Prompt)
}

// Unwrap makes errors.Is(err, ErrContextLength) hold.
func (e *ContextLengthError) Unwrap() error { return ErrContextLength }
