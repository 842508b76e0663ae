package openai

// The generation path of both completion endpoints:
//
//	read body → parse+validate → resolve model (404) → render chat template
//	→ Backend.Generate, whose tokens pass the stopper (stop sequences)
//	→ either one JSON response, or an SSE stream that starts at the first
//	token, so that errors before it still get a proper HTTP status.
//
// When the caller disconnects, r.Context() is canceled, Generate sees it
// and nothing more is written.

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// errStopSequence is returned by emit when a stop sequence ended the text.
var errStopSequence = errors.New("openai: stop sequence reached")

type kind int

const (
	kindCompletion kind = iota
	kindChat
)

// job is one generation in flight.
type job struct {
	kind         kind
	id           string
	created      int64
	model        string
	stream       bool
	includeUsage bool
	promptParam  string
}

func (h *handler) completions(w http.ResponseWriter, r *http.Request) {
	body, apiErr := h.readBody(w, r)
	if apiErr != nil {
		WriteError(w, apiErr)
		return
	}
	req, apiErr := ParseCompletionRequest(body)
	if apiErr != nil {
		WriteError(w, apiErr)
		return
	}
	if _, apiErr := h.lookupModel(r.Context(), req.Model); apiErr != nil {
		h.writeUnlessGone(w, r, apiErr)
		return
	}
	if apiErr := h.applyMaxTokens(&req.params, h.opts.CompletionMaxTokens); apiErr != nil {
		WriteError(w, apiErr)
		return
	}
	// Each completion request is its own conversation (spec §6).
	gen := generateRequest(req.params, req.Prompt, h.isolationKey(r, rand.Text()))
	h.run(w, r, job{kind: kindCompletion, id: "cmpl-" + rand.Text(), promptParam: "prompt"}, req.params, gen, req.Stop)
}

func (h *handler) chatCompletions(w http.ResponseWriter, r *http.Request) {
	body, apiErr := h.readBody(w, r)
	if apiErr != nil {
		WriteError(w, apiErr)
		return
	}
	req, apiErr := ParseChatRequest(body)
	if apiErr != nil {
		WriteError(w, apiErr)
		return
	}
	model, apiErr := h.lookupModel(r.Context(), req.Model)
	if apiErr != nil {
		h.writeUnlessGone(w, r, apiErr)
		return
	}
	if apiErr := h.applyMaxTokens(&req.params, h.opts.MaxTokens); apiErr != nil {
		WriteError(w, apiErr)
		return
	}
	chat := RenderChat(model.ChatTemplate, model.BOSText, model.EOSText, req.Messages)
	gen := generateRequest(req.params, chat.Text, h.isolationKey(r, conversationKey(req.Messages)))
	stops := append(append([]string(nil), req.Stop...), chat.Stops...)
	h.run(w, r, job{kind: kindChat, id: "chatcmpl-" + rand.Text(), promptParam: "messages"}, req.params, gen, stops)
}

func (h *handler) writeUnlessGone(w http.ResponseWriter, r *http.Request, apiErr *APIError) {
	if r.Context().Err() == nil {
		WriteError(w, apiErr)
	}
}

func (h *handler) applyMaxTokens(p *params, def int) *APIError {
	if p.MaxTokens == 0 {
		p.MaxTokens = def
	}
	if p.MaxTokens > h.opts.MaxTokens {
		return invalid(p.maxField, "invalid_value", fmt.Sprintf("%s is larger than this proxy allows (%d)", p.maxField, h.opts.MaxTokens))
	}
	return nil
}

func generateRequest(p params, prompt, isolation string) GenerateRequest {
	return GenerateRequest{Model: p.Model, Prompt: prompt, MaxTokens: p.MaxTokens, MaxTokensSet: p.MaxTokensSet,
		Temperature: p.Temperature, TopP: p.TopP, Seed: p.Seed, Stop: p.Stop, Isolation: isolation,
		Logprobs: p.Logprobs, TopLogprobs: p.TopLogprobs}
}

// conversationKey identifies a chat conversation by its opening: the
// messages up to and including the first user message. Later turns of the
// same chat resend that opening, so they map to the same key.
func conversationKey(msgs []Message) string {
	var b strings.Builder
	for _, m := range msgs {
		b.WriteString(m.Role)
		b.WriteByte(0)
		b.WriteString(m.Content)
		b.WriteByte(0)
		if m.Role == "user" {
			break
		}
	}
	return b.String()
}

// run generates and writes the response for one job.
func (h *handler) run(w http.ResponseWriter, r *http.Request, j job, p params, gen GenerateRequest, stops []string) {
	ctx := r.Context()
	j.created, j.model, j.stream, j.includeUsage = time.Now().Unix(), p.Model, p.Stream, p.IncludeUsage
	st := &stopper{stops: stops}
	var text strings.Builder
	// Logprobs of tokens not yet written (streaming) or of all (not).
	var lps []*Logprob
	s := &sse{w: w, rc: http.NewResponseController(w)}
	count := 0
	// Streams start when the backend accepts the request, and send comment
	// lines until the first token, so a long prefill does not look like a
	// dead connection.
	stopKeepAlive := func() {}
	defer func() { stopKeepAlive() }()
	if j.stream {
		gen.Accepted = func() {
			if s.started {
				return
			}
			if err := s.begin(j); err != nil {
				return
			}
			stopKeepAlive = s.keepAlive(h.opts.KeepAlive)
		}
	}
	var writeErr error // the caller's connection failed: stop quietly
	send := func(piece string) (err error) {
		defer func() {
			if err != nil {
				writeErr = err
			}
		}()
		if !j.stream {
			text.WriteString(piece)
			return nil
		}
		if !s.started {
			if err := s.begin(j); err != nil {
				return err
			}
		}
		if piece == "" {
			return nil
		}
		stopKeepAlive()
		// A chunk carries the logprobs of the tokens whose text it ends.
		err = s.event(j.deltaChunk(piece, lps))
		lps = lps[:0]
		return err
	}
	emit := func(t Token) error {
		count++
		if t.Logprob != nil {
			lps = append(lps, t.Logprob)
		}
		out, stopped := st.push(t.Text)
		if err := send(out); err != nil {
			return err
		}
		if stopped {
			return errStopSequence
		}
		return nil
	}
	start := time.Now()
	usage, err := h.backend.Generate(ctx, gen, emit)
	switch {
	case errors.Is(err, errStopSequence):
		usage.FinishReason = "stop"
	case err != nil:
		if ctx.Err() != nil || writeErr != nil {
			h.log.Debug("openai: caller went away", "model", j.model, "tokens", count)
			return
		}
		apiErr := h.mapError(err, j.promptParam)
		if s.started {
			// Headers are out: report in-band, as OpenAI does, then end
			// the stream properly so that readers waiting for [DONE] stop.
			if s.event(apiErr.body()) == nil {
				_ = s.done()
			}
			return
		}
		WriteError(w, apiErr)
		return
	default:
		if err := send(st.flush()); err != nil {
			return
		}
	}
	if usage.CompletionTokens == 0 {
		usage.CompletionTokens = count
	}
	if st.done || usage.FinishReason != "length" { // a stop sequence wins over the backend's reason
		usage.FinishReason = "stop"
	}
	h.log.Debug("openai: completion served", "model", j.model, "stream", j.stream,
		"tokens", usage.CompletionTokens, "finish", usage.FinishReason, "elapsed", time.Since(start))
	if !j.stream {
		writeJSON(w, j.full(text.String(), usage, p.Logprobs, lps))
		return
	}
	if err := send(""); err != nil { // starts the stream if no token came
		return
	}
	if len(lps) > 0 { // tokens whose text a stop sequence held back or cut
		if err := s.event(j.deltaChunk("", lps)); err != nil {
			return
		}
	}
	if err := s.event(j.finalChunk(usage.FinishReason)); err != nil {
		return
	}
	if j.includeUsage {
		if err := s.event(j.usageChunk(usage)); err != nil {
			return
		}
	}
	_ = s.done()
}

func (j job) deltaChunk(text string, lps []*Logprob) any {
	if j.kind == kindChat {
		d := deltaJSON{Content: &text}
		return j.chatChunk(d, nil, chatLogprobs(lps))
	}
	return j.completionChunk([]completionChoiceJSON{{Text: text, Logprobs: completionLogprobs(lps)}})
}

func (j job) finalChunk(finish string) any {
	if j.kind == kindChat {
		return j.chatChunk(deltaJSON{}, &finish, nil)
	}
	return j.completionChunk([]completionChoiceJSON{{FinishReason: &finish}})
}

func (j job) usageChunk(u Usage) any {
	if j.kind == kindChat {
		return chatChunkJSON{ID: j.id, Object: "chat.completion.chunk", Created: j.created, Model: j.model,
			Choices: []chatChunkChoiceJSON{}, Usage: usageOf(u)}
	}
	c := j.completionChunk([]completionChoiceJSON{})
	c.Usage = usageOf(u)
	return c
}

func (j job) chatChunk(d deltaJSON, finish *string, lp *chatLogprobsJSON) chatChunkJSON {
	return chatChunkJSON{ID: j.id, Object: "chat.completion.chunk", Created: j.created, Model: j.model,
		Choices: []chatChunkChoiceJSON{{Delta: d, FinishReason: finish, Logprobs: lp}}}
}

func (j job) completionChunk(choices []completionChoiceJSON) completionJSON {
	return completionJSON{ID: j.id, Object: "text_completion", Created: j.created, Model: j.model, Choices: choices}
}

// full is the non-streamed response; with logprobs asked for, lps are
// every generated token's.
func (j job) full(text string, u Usage, logprobs bool, lps []*Logprob) any {
	if j.kind == kindChat {
		var lp *chatLogprobsJSON
		if logprobs {
			lp = chatLogprobs(lps)
			if lp == nil {
				lp = &chatLogprobsJSON{Content: []chatTokenLogprobJSON{}}
			}
		}
		return chatJSON{ID: j.id, Object: "chat.completion", Created: j.created, Model: j.model,
			Choices: []chatChoiceJSON{{Message: chatMessageJSON{Role: "assistant", Content: text}, FinishReason: u.FinishReason, Logprobs: lp}},
			Usage:   usageOf(u)}
	}
	finish := u.FinishReason
	var lp *completionLogprobsJSON
	if logprobs {
		lp = completionLogprobs(lps)
		if lp == nil {
			lp = &completionLogprobsJSON{Tokens: []string{}, TokenLogprobs: []float64{}, TopLogprobs: []map[string]float64{}, TextOffset: []int{}}
		}
	}
	return completionJSON{ID: j.id, Object: "text_completion", Created: j.created, Model: j.model,
		Choices: []completionChoiceJSON{{Text: text, FinishReason: &finish, Logprobs: lp}}, Usage: usageOf(u)}
}

// sse writes a server-sent-event stream: "data: <json>\n\n" per event,
// flushed at once, ending with "data: [DONE]\n\n".
type sse struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	started bool
	mu      sync.Mutex // serialises writes: keep-alive comments come from their own goroutine
}

// begin sends the headers and, for chat, the role chunk.
func (s *sse) begin(j job) error {
	s.start()
	if j.kind == kindChat {
		return s.event(j.chatChunk(deltaJSON{Role: "assistant", Content: new("")}, nil, nil))
	}
	return nil
}

// keepAlive writes an SSE comment line every d until the returned stop is
// called (idempotent; it waits for the writer to end).
func (s *sse) keepAlive(d time.Duration) (stop func()) {
	done := make(chan struct{})
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if s.writeRaw([]byte(": keep-alive\n\n")) != nil {
					return
				}
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); <-ended }) }
}

func (s *sse) start() {
	s.started = true
	h := s.w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	s.w.WriteHeader(http.StatusOK)
}

func (s *sse) event(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.write(b)
}

func (s *sse) done() error { return s.write([]byte("[DONE]")) }

func (s *sse) write(data []byte) error {
	buf := make([]byte, 0, len(data)+8)
	buf = append(append(append(buf, "data: "...), data...), "\n\n"...)
	return s.writeRaw(buf)
}

func (s *sse) writeRaw(buf []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.w.Write(buf); err != nil {
		return err
	}
	return s.rc.Flush()
}
