package testnet

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestClientFrontsOverTestnet drives the client's OpenAI API and SOCKS5 front
// with real curl and the official openai npm package, through a testnet of
// real processes.
func TestClientFrontsOverTestnet(t *testing.T) {
	n := startNetwork(t, Spec{})
	api, socks, _ := n.ClientAddrs()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	model, err := FirstModel(ctx, api)
	if err != nil {
		t.Fatal(err)
	}
	want := localGreedy(t, n.Spec.Model, e2ePrompt, 16)
	curl := func(args ...string) (string, error) {
		out, err := exec.CommandContext(ctx, "curl", append([]string{"-sS", "--max-time", "120"}, args...)...).Output()
		return string(out), err
	}
	body := func(v map[string]any) string {
		v["model"] = model
		b, _ := json.Marshal(v)
		return string(b)
	}

	// Non-streamed completion with curl: valid OpenAI JSON, the local text.
	out, err := curl("-H", "Content-Type: application/json", "-d",
		body(map[string]any{"prompt": e2ePrompt, "max_tokens": 16, "temperature": 0}), api+"/v1/completions")
	if err != nil {
		t.Fatalf("curl completions: %v", err)
	}
	var cr struct {
		Object  string `json:"object"`
		Choices []struct {
			Text         string `json:"text"`
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
		Usage struct {
			PromptTokens     int `json:"prompt_tokens"`
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal([]byte(out), &cr); err != nil || cr.Object != "text_completion" || len(cr.Choices) != 1 {
		t.Fatalf("completion response %s: %v", out, err)
	}
	if cr.Choices[0].Text != want || cr.Usage.CompletionTokens != 16 || cr.Choices[0].FinishReason != "length" {
		t.Fatalf("completion %+v, want text %q and 16 tokens", cr, want)
	}

	// Streamed chat completion with curl: SSE chunks ending in [DONE].
	out, err = curl("-N", "-H", "Content-Type: application/json", "-d",
		body(map[string]any{"messages": []map[string]string{{"role": "user", "content": "Tell me a story"}},
			"max_tokens": 12, "temperature": 0, "stream": true}), api+"/v1/chat/completions")
	if err != nil {
		t.Fatalf("curl chat stream: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if lines[len(lines)-1] != "data: [DONE]" || !strings.Contains(out, `"object":"chat.completion.chunk"`) || !strings.Contains(out, `"finish_reason":"length"`) {
		t.Fatalf("chat stream:\n%s", out)
	}

	// The SOCKS5 front: a .unfed host is served, anything else refused.
	out, err = curl("--socks5-hostname", socks, "-H", "Content-Type: application/json", "-d",
		body(map[string]any{"prompt": e2ePrompt, "max_tokens": 16, "temperature": 0}), "http://stories.unfed/v1/completions")
	if err != nil || !strings.Contains(out, `"text":`+mustJSON(want)) {
		t.Fatalf("completion over SOCKS5: %v %s", err, out)
	}
	_, err = curl("--socks5-hostname", socks, "http://example.com/")
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 97 {
		t.Fatalf("non-.unfed host over SOCKS5: %v, want curl exit 97 (refused by the proxy)", err)
	}

	// After the first request the client keeps a circuit built ahead of
	// need: later requests start on a prebuilt one.
	page, err := getBody(ctx, "http://"+n.Node("client").Listeners["metrics"]+"/debug/circuits")
	if err != nil {
		t.Fatal(err)
	}
	var dbg struct {
		Circuits []struct {
			Prebuilt bool `json:"prebuilt"`
		} `json:"circuits"`
	}
	if err := json.Unmarshal([]byte(page), &dbg); err != nil {
		t.Fatal(err)
	}
	prebuilt := 0
	for _, c := range dbg.Circuits {
		if c.Prebuilt {
			prebuilt++
		}
	}
	if len(dbg.Circuits) < 3 || prebuilt == 0 {
		t.Fatalf("%d circuits, %d of them prebuilt; want later requests on circuits built ahead of need", len(dbg.Circuits), prebuilt)
	}

	// The official openai npm client streams a chat completion.
	root, _ := RepoRoot()
	dir := filepath.Join(root, "client", "openai", "testdata", "node")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "openai")); err != nil {
		t.Fatalf("the openai npm package is missing: run make deps (%v)", err)
	}
	cmd := exec.CommandContext(ctx, "node", "stream.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "UNFED_BASE_URL="+api+"/v1", "UNFED_API_KEY=sk-testnet", "UNFED_MODEL="+model)
	nodeOut, err := cmd.Output()
	if err != nil {
		t.Fatalf("node stream.mjs: %v", err)
	}
	var res struct {
		Content  string `json:"content"`
		Role     string `json:"role"`
		Finish   string `json:"finish"`
		NotFound struct {
			Status int `json:"status"`
		} `json:"notFound"`
	}
	if err := json.Unmarshal(nodeOut, &res); err != nil {
		t.Fatalf("node output %s: %v", nodeOut, err)
	}
	if res.Content == "" || res.Role != "assistant" || (res.Finish != "stop" && res.Finish != "length") || res.NotFound.Status != 404 {
		t.Fatalf("openai client saw %+v", res)
	}
}

func mustJSON(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
