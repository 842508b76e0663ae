package socks

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
)

func rewritten(t testing.TB, body string) string {
	r := httptest.NewRequest("POST", "http://stories.unfed/v1/completions", strings.NewReader(body))
	defaultModel(r, "stories")
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	if r.ContentLength != int64(len(b)) {
		t.Fatalf("Content-Length %d for %d bytes", r.ContentLength, len(b))
	}
	return string(b)
}

// TestHostSelectsModel: a request that names no model gets the host's; one
// that names a model, or is not a JSON object, passes unchanged.
func TestHostSelectsModel(t *testing.T) {
	for _, body := range []string{`{"prompt":"x"}`, `{"model":"","prompt":"x"}`, `{"model":null}`} {
		var got struct{ Model, Prompt string }
		if err := json.Unmarshal([]byte(rewritten(t, body)), &got); err != nil || got.Model != "stories" {
			t.Errorf("%s: %v %+v", body, err, got)
		}
	}
	for _, body := range []string{`{"model":"other","prompt":"x"}`, `[1,2]`, `not json`, `{"model":5}`, ``} {
		if got := rewritten(t, body); got != body {
			t.Errorf("%q rewritten to %q", body, got)
		}
	}
	big := `{"prompt":"` + strings.Repeat("a", maxRewriteBody) + `"}`
	if got := rewritten(t, big); got != big {
		t.Error("an oversized body was changed")
	}
}

func FuzzDefaultModel(f *testing.F) {
	for _, s := range []string{`{"prompt":"x"}`, `{"model":"other"}`, `{"model":null}`, `[]`, `{`, `{"model":{"a":1}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got := []byte(rewritten(t, string(body)))
		if bytes.Equal(got, body) {
			return
		}
		var obj map[string]any
		if err := json.Unmarshal(got, &obj); err != nil || obj["model"] != "stories" {
			t.Fatalf("%q rewritten to %q", body, got)
		}
	})
}
