package client

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestPromptResendBounded (issue 23 item 3): when every circuit fails after
// the prompt crossed it (here: the last hop stalls every step past the
// step timeout), the client sends the prompt on at most circuit.retries + 1
// circuits, then answers 503 saying why, instead of offering the prompt to
// path after path.
func TestPromptResendBounded(t *testing.T) {
	n := sharedNet(t)
	const retries = 2
	rc := startClient(t, n, t.TempDir(), func(c *Config) {
		c.Circuit.Mode = string(ModeAnonymous)
		c.Circuit.Retries = retries
		c.Circuit.StepTimeout = 400 * time.Millisecond
	})
	circuits, release := n.armStall()
	defer release()
	body, _ := json.Marshal(map[string]any{"model": n.modelID + ":anonymous", "prompt": testPrompt, "max_tokens": 4, "temperature": 0})
	resp, err := http.Post("http://"+rc.api+"/v1/completions", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	release()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(msg), "failed") {
		t.Fatalf("every circuit stalling: HTTP %d %s, want 503 naming the failures", resp.StatusCode, msg)
	}
	if got := circuits(); got < 1 || got > retries+1 {
		t.Fatalf("the prompt reached the last hop on %d circuits, want 1..%d (circuit.retries + 1)", got, retries+1)
	}
	t.Logf("prompt sent on %d circuits; answer: %s", circuits(), strings.TrimSpace(string(msg)))
}
