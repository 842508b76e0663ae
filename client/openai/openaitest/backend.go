// Package openaitest provides a scripted openai.Backend for tests of the
// HTTP and SOCKS front ends. It is not for production use.
package openaitest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/unfed/unfed/client/openai"
)

// Story is the default script: the reference continuation of stories260K.
var Story = []string{",", " there", " was", " a", " little", " girl", " named", " Lily", ".",
	" She", " loved", " to", " play", " outside", " in", " the", " park", "."}

// Backend is a scripted openai.Backend. Set its fields before use; it
// records every request it receives.
type Backend struct {
	// ModelList is what Models returns.
	ModelList []openai.Model
	// Pieces are the token texts Generate emits, in order; nil means Story.
	// When all are emitted before MaxTokens, the finish reason is "stop".
	Pieces []string
	// Err, when set, is returned by Generate after FailAfter tokens.
	Err       error
	FailAfter int
	// BlockAfter, when > 0, makes Generate emit that many tokens and then
	// wait until its context is canceled.
	BlockAfter int
	// Delay, when > 0, is waited before each token (a slow generation).
	Delay time.Duration

	mu       sync.Mutex
	requests []openai.GenerateRequest
	canceled chan struct{}
	started  chan struct{}
}

func (b *Backend) init() {
	if b.canceled == nil {
		b.canceled = make(chan struct{})
		b.started = make(chan struct{}, 64)
	}
}

// Models implements openai.Backend.
func (b *Backend) Models(ctx context.Context) ([]openai.Model, error) {
	return b.ModelList, nil
}

// Generate implements openai.Backend.
func (b *Backend) Generate(ctx context.Context, req openai.GenerateRequest, emit func(openai.Token) error) (openai.Usage, error) {
	b.mu.Lock()
	b.init()
	b.requests = append(b.requests, req)
	canceled := b.canceled
	b.mu.Unlock()
	select {
	case b.started <- struct{}{}:
	default:
	}
	usage := openai.Usage{PromptTokens: len(strings.Fields(req.Prompt)) + 1} // +1 for BOS
	pieces := b.Pieces
	if pieces == nil {
		pieces = Story
	}
	for i, p := range pieces {
		if b.Err != nil && i == b.FailAfter {
			return usage, b.Err
		}
		if b.BlockAfter > 0 && i == b.BlockAfter {
			<-ctx.Done()
			b.markCanceled(canceled)
			return usage, fmt.Errorf("openaitest: generation canceled: %w", ctx.Err())
		}
		if usage.CompletionTokens == req.MaxTokens {
			usage.FinishReason = "length"
			return usage, nil
		}
		if b.Delay > 0 {
			select {
			case <-time.After(b.Delay):
			case <-ctx.Done():
			}
		}
		// A caller that goes away before BlockAfter is seen here.
		if err := ctx.Err(); err != nil {
			b.markCanceled(canceled)
			return usage, fmt.Errorf("openaitest: %w", err)
		}
		usage.CompletionTokens++
		if err := emit(openai.Token{Text: p, ID: 3 + i}); err != nil {
			if ctx.Err() != nil {
				b.markCanceled(canceled)
			}
			return usage, err
		}
	}
	usage.FinishReason = "stop"
	return usage, nil
}

// markCanceled closes canceled once: Generate saw its context canceled.
func (b *Backend) markCanceled(canceled chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-canceled:
	default:
		close(canceled)
	}
}

// Requests returns a copy of the requests Generate has received.
func (b *Backend) Requests() []openai.GenerateRequest {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]openai.GenerateRequest(nil), b.requests...)
}

// Canceled is closed when Generate observes its context canceled, blocked
// or between tokens.
func (b *Backend) Canceled() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.init()
	return b.canceled
}

// Started receives once per Generate call (buffered, best effort).
func (b *Backend) Started() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.init()
	return b.started
}
