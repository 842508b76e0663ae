package openai

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// APIError is an error in OpenAI's error shape (spec/08-client-api.md §5):
//
//	{"error":{"message":"...","type":"invalid_request_error","param":"stop","code":"..."}}
//
// Param and Code are null when empty.
type APIError struct {
	Status  int    // HTTP status
	Message string // human-readable, never contains prompt text
	Type    string // invalid_request_error, not_found_error, server_error, ...
	Param   string // offending request field, "" for null
	Code    string // machine-readable code, "" for null
	// RetryAfter, when positive, is sent as the Retry-After header in whole
	// seconds, rounded up (429 and 503: when to try again).
	RetryAfter time.Duration
}

func (e *APIError) Error() string { return "openai: " + e.Message }

// Error types as OpenAI names them.
const (
	typeInvalidRequest = "invalid_request_error"
	typePermission     = "permission_error"
	typeServer         = "server_error"
	// typeRateLimit is what OpenAI puts in the type of a 429 for too many
	// requests.
	typeRateLimit = "requests"
)

func invalid(param, code, msg string) *APIError {
	return &APIError{Status: http.StatusBadRequest, Type: typeInvalidRequest, Param: param, Code: code, Message: msg}
}

type errorBody struct {
	Error errorObject `json:"error"`
}

type errorObject struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func (e *APIError) body() errorBody {
	return errorBody{Error: errorObject{Message: e.Message, Type: e.Type, Param: nullable(e.Param), Code: nullable(e.Code)}}
}

// WriteError writes e as an OpenAI error response.
func WriteError(w http.ResponseWriter, e *APIError) {
	b, err := json.Marshal(e.body())
	if err != nil { // cannot happen: only strings
		b = []byte(`{"error":{"message":"internal error","type":"server_error","param":null,"code":null}}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	if e.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(retryAfterSeconds(e.RetryAfter)))
	}
	w.WriteHeader(e.Status)
	_, _ = w.Write(append(b, '\n'))
}

// retryAfterSeconds is d in whole seconds, rounded up, at least 1.
func retryAfterSeconds(d time.Duration) int {
	return max(1, int((d+time.Second-1)/time.Second))
}
