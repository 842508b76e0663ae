package openai_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/unfed/unfed/client/openai"
	"github.com/unfed/unfed/client/openai/openaitest"
)

// TestOpenAIClientStreaming runs the official openai npm package
// (testdata/node, installed by `make deps`) against the handler.
func TestOpenAIClientStreaming(t *testing.T) {
	dir := filepath.Join("testdata", "node")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "openai", "package.json")); err != nil {
		t.Fatalf("the openai npm package is not installed in %s: run make deps (npm ci there): %v", dir, err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is required for this test (run make deps): %v", err)
	}
	b := &openaitest.Backend{}
	srv := newServer(t, b, openai.Options{})

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "stream.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "UNFED_BASE_URL="+srv.URL+"/v1", "UNFED_API_KEY=sk-node-test", "UNFED_MODEL=qwen")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, stderr.String())
	}
	var got struct {
		Content string   `json:"content"`
		Role    string   `json:"role"`
		Finish  string   `json:"finish"`
		Chunks  int      `json:"chunks"`
		IDs     []string `json:"ids"`
		Objects []string `json:"objects"`
		Usage   *struct {
			PromptTokens     int `json:"prompt_tokens"`
			CompletionTokens int `json:"completion_tokens"`
			TotalTokens      int `json:"total_tokens"`
		} `json:"usage"`
		NotFound struct {
			Status     int    `json:"status"`
			Code       string `json:"code"`
			Type       string `json:"type"`
			IsNotFound bool   `json:"isNotFound"`
		} `json:"notFound"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("node output %q: %v", out, err)
	}
	want := ", there was a little girl named Lily. She loved to play outside in the"
	if got.Content != want || got.Role != "assistant" || got.Finish != "stop" {
		t.Fatalf("streamed %q role %q finish %q, want %q assistant stop", got.Content, got.Role, got.Finish, want)
	}
	if len(got.IDs) != 1 || !strings.HasPrefix(got.IDs[0], "chatcmpl-") || len(got.Objects) != 1 || got.Objects[0] != "chat.completion.chunk" {
		t.Fatalf("ids %v objects %v", got.IDs, got.Objects)
	}
	// 17 tokens: the one that completed the stop sequence " park" counts.
	if got.Usage == nil || got.Usage.CompletionTokens != 17 || got.Usage.TotalTokens != got.Usage.PromptTokens+17 {
		t.Fatalf("usage = %+v", got.Usage)
	}
	if got.Chunks < 10 {
		t.Fatalf("only %d chunks: the stream was not incremental", got.Chunks)
	}
	nf := got.NotFound
	if nf.Status != 404 || nf.Code != "model_not_found" || nf.Type != "invalid_request_error" || !nf.IsNotFound {
		t.Fatalf("unknown model seen by the SDK as %+v", nf)
	}
	reqs := b.Requests()
	if len(reqs) != 1 || reqs[0].Temperature != 0 || reqs[0].Seed == nil || *reqs[0].Seed != 7 || reqs[0].MaxTokens != 64 {
		t.Fatalf("backend saw %+v", reqs)
	}
}
