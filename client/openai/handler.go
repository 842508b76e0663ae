// Package openai owns the client proxy's OpenAI-compatible HTTP API
// (spec/08-client-api.md): request decoding and validation, chat templates,
// stop sequences, server-sent-event streaming and the OpenAI error shape.
// It stops at the Backend interface; the overlay (circuits, tokenizer,
// sampling) lives behind it in the rest of client/.
//
// Endpoints: GET /v1/models, GET /v1/models/{model}, POST /v1/completions,
// POST /v1/chat/completions. Bind the handler on loopback only.
package openai

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Options tune the handler; the zero value gives the defaults.
type Options struct {
	// MaxBodyBytes limits a request body; larger ones get 413. Default 1 MiB.
	MaxBodyBytes int64
	// MaxTokens is the largest max_tokens a request may ask for, and the
	// default for chat requests that set none. Default 4096.
	MaxTokens int
	// CompletionMaxTokens is the default max_tokens of /v1/completions,
	// 16 as OpenAI's.
	CompletionMaxTokens int
	// AllowAnyHost turns off the Host and Origin checks that keep web pages
	// from using the proxy (DNS rebinding, cross-site requests). By default
	// only loopback addresses, "localhost" and names under ".unfed" pass.
	AllowAnyHost bool
	// KeepAlive is the interval of SSE comment lines a stream sends while
	// it waits for its first token (a long prompt's prefill). Default 5 s.
	KeepAlive time.Duration
}

func (o Options) withDefaults() Options {
	o.KeepAlive = cmp.Or(o.KeepAlive, 5*time.Second)
	o.MaxBodyBytes = cmp.Or(o.MaxBodyBytes, 1<<20)
	o.MaxTokens = cmp.Or(o.MaxTokens, 4096)
	o.CompletionMaxTokens = min(cmp.Or(o.CompletionMaxTokens, 16), o.MaxTokens)
	return o
}

type handler struct {
	backend Backend
	log     *slog.Logger
	opts    Options
	salt    [32]byte // keys the isolation hash, fresh per handler
	mux     *http.ServeMux
}

// NewHandler returns the OpenAI-compatible API over backend. A nil logger
// discards logs.
func NewHandler(backend Backend, logger *slog.Logger, opts Options) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	h := &handler{backend: backend, log: logger, opts: opts.withDefaults(), mux: http.NewServeMux()}
	_, _ = rand.Read(h.salt[:]) // crypto/rand.Read never fails
	h.mux.HandleFunc("GET /v1/models", h.listModels)
	h.mux.HandleFunc("GET /v1/models/{model}", h.getModel)
	h.mux.HandleFunc("POST /v1/completions", h.completions)
	h.mux.HandleFunc("POST /v1/chat/completions", h.chatCompletions)
	h.mux.HandleFunc("/v1/models", methodNotAllowed("GET, HEAD"))
	h.mux.HandleFunc("/v1/models/{model}", methodNotAllowed("GET, HEAD"))
	h.mux.HandleFunc("/v1/completions", methodNotAllowed("POST"))
	h.mux.HandleFunc("/v1/chat/completions", methodNotAllowed("POST"))
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, &APIError{Status: http.StatusNotFound, Type: typeInvalidRequest, Code: "unknown_url",
			Message: "Unknown request URL: " + r.Method + " " + truncate(r.URL.Path, 128)})
	})
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.opts.AllowAnyHost && !h.originAllowed(r) {
		WriteError(w, &APIError{Status: http.StatusForbidden, Type: typePermission, Code: "forbidden_origin",
			Message: "requests are accepted only for localhost, loopback addresses and .unfed names"})
		return
	}
	h.mux.ServeHTTP(w, r)
}

func methodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		WriteError(w, &APIError{Status: http.StatusMethodNotAllowed, Type: typeInvalidRequest, Code: "method_not_allowed",
			Message: "method " + truncate(r.Method, 16) + " is not allowed here; use " + allow})
	}
}

// originAllowed checks Host, and Origin when a browser sent one.
func (h *handler) originAllowed(r *http.Request) bool {
	if r.Host != "" && !localHost(r.Host) {
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && localHost(u.Host)
}

// localHost reports whether hostport names this machine or the overlay.
func localHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" || strings.HasSuffix(host, ".unfed") {
		return true
	}
	ip := net.ParseIP(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	return ip != nil && ip.IsLoopback()
}

func (h *handler) listModels(w http.ResponseWriter, r *http.Request) {
	models, err := h.backend.Models(r.Context())
	if err != nil {
		h.backendError(w, r, err, "")
		return
	}
	list := modelListJSON{Object: "list", Data: make([]modelJSON, 0, len(models))}
	for _, m := range models {
		list.Data = append(list.Data, modelOf(m))
	}
	slices.SortFunc(list.Data, func(a, b modelJSON) int { return strings.Compare(a.ID, b.ID) })
	writeJSON(w, list)
}

func (h *handler) getModel(w http.ResponseWriter, r *http.Request) {
	m, apiErr := h.lookupModel(r.Context(), r.PathValue("model"))
	if apiErr != nil {
		WriteError(w, apiErr)
		return
	}
	writeJSON(w, modelOf(m))
}

func modelOf(m Model) modelJSON {
	return modelJSON{ID: m.ID, Object: "model", Created: m.Created, OwnedBy: cmp.Or(m.OwnedBy, "unfed"), Name: m.Name}
}

func (h *handler) lookupModel(ctx context.Context, id string) (Model, *APIError) {
	if r, ok := h.backend.(ModelResolver); ok {
		m, err := r.ResolveModel(ctx, id)
		switch {
		case errors.Is(err, ErrUnknownModel):
			return Model{}, notFound(id)
		case err != nil:
			return Model{}, h.mapError(err, "")
		}
		return m, nil
	}
	models, err := h.backend.Models(ctx)
	if err != nil {
		return Model{}, h.mapError(err, "")
	}
	for _, m := range models {
		if m.ID == id {
			return m, nil
		}
	}
	return Model{}, notFound(id)
}

func notFound(id string) *APIError {
	return &APIError{Status: http.StatusNotFound, Type: typeInvalidRequest, Param: "model", Code: "model_not_found",
		Message: "The model `" + truncate(id, maxModelIDBytes) + "` does not exist or is not served by the network now."}
}

// mapError turns a backend error into the API error the caller sees
// (spec/08-client-api.md §5). promptParam names the field that holds the
// prompt, for context-length errors.
func (h *handler) mapError(err error, promptParam string) *APIError {
	switch {
	case errors.Is(err, ErrUnknownModel):
		return notFound("")
	case errors.Is(err, ErrUnavailable):
		e := &APIError{Status: http.StatusServiceUnavailable, Type: typeServer, Code: "service_unavailable",
			Message: "no circuit to the model is available now; retry later"}
		var r *UnavailableError
		if errors.As(err, &r) {
			e.Message, e.RetryAfter = r.Reason+"; retry later", r.RetryAfter
		}
		return e
	case errors.Is(err, ErrRateLimited):
		e := &APIError{Status: http.StatusTooManyRequests, Type: typeRateLimit, Code: "rate_limit_exceeded",
			Message: "this proxy is running as many requests as it allows; retry later"}
		var r *RateLimitError
		if errors.As(err, &r) {
			e.Message, e.RetryAfter = r.Reason+"; retry later", r.RetryAfter
		}
		return e
	case errors.Is(err, ErrContextLength):
		if cle, ok := errors.AsType[*ContextLengthError](err); ok {
			return invalid(promptParam, "context_length_exceeded", cle.Error())
		}
		return invalid(promptParam, "context_length_exceeded", "the prompt does not fit the model's context length")
	}
	h.log.Warn("openai: backend failed", "err", err)
	return &APIError{Status: http.StatusInternalServerError, Type: typeServer, Message: "the overlay failed to serve the request"}
}

func (h *handler) backendError(w http.ResponseWriter, r *http.Request, err error, promptParam string) {
	if r.Context().Err() != nil {
		return // the caller is gone: nothing to write
	}
	WriteError(w, h.mapError(err, promptParam))
}

// readBody reads a request body up to the limit.
func (h *handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *APIError) {
	tooLarge := &APIError{Status: http.StatusRequestEntityTooLarge, Type: typeInvalidRequest, Code: "request_too_large",
		Message: "request body is larger than the limit"}
	if r.ContentLength > h.opts.MaxBodyBytes {
		return nil, tooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.opts.MaxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, tooLarge
		}
		return nil, invalid("", "invalid_body", "could not read the request body")
	}
	return body, nil
}

// isolationKey derives GenerateRequest.Isolation (spec/08-client-api.md §6)
// from who is asking (SOCKS credentials or API key) and the conversation.
func (h *handler) isolationKey(r *http.Request, conversation string) string {
	scheme, cred := "api", bearer(r)
	if src, ok := r.Context().Value(isolationCtxKey{}).(isolationSource); ok {
		scheme, cred = src.scheme, src.credentials
	}
	mac := hmac.New(sha256.New, h.salt[:])
	for _, s := range []string{scheme, cred, conversation} {
		mac.Write(binary.BigEndian.AppendUint32(nil, uint32(len(s))))
		mac.Write([]byte(s))
	}
	return hex.EncodeToString(mac.Sum(nil)[:16])
}

func bearer(r *http.Request) string {
	a := r.Header.Get("Authorization")
	if len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		return a[7:]
	}
	return a
}

type isolationCtxKey struct{}

type isolationSource struct{ scheme, credentials string }

// WithIsolationSource returns ctx marking requests as coming through a
// front end with its own caller credentials (for SOCKS5: scheme "socks",
// credentials the username and password, "" for no auth). The handler uses
// them, instead of the API key, only to derive the isolation key; they are
// never checked, logged or passed on.
func WithIsolationSource(ctx context.Context, scheme, credentials string) context.Context {
	return context.WithValue(ctx, isolationCtxKey{}, isolationSource{scheme, credentials})
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		WriteError(w, &APIError{Status: http.StatusInternalServerError, Type: typeServer, Message: "could not encode the response"})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(b, '\n'))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}
