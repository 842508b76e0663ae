package openai_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/unfed/unfed/client/openai"
	"github.com/unfed/unfed/client/openai/openaitest"
)

func TestUnavailableReasonReachesCaller(t *testing.T) {
	b := &openaitest.Backend{ModelList: []openai.Model{{ID: "m"}}, Err: &openai.UnavailableError{Reason: "no valid consensus: expired"}}
	h := openai.NewHandler(b, slog.New(slog.DiscardHandler), openai.Options{})
	req := httptest.NewRequest("POST", "http://127.0.0.1/v1/completions", strings.NewReader(`{"model":"m","prompt":"x"}`))
	req.Host = "127.0.0.1"
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	body, _ := io.ReadAll(w.Result().Body)
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(string(body), "no valid consensus: expired; retry later") {
		t.Fatalf("%d %s", w.Code, body)
	}
}
