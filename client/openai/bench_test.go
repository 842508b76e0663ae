package openai_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/unfed/unfed/client/openai"
	"github.com/unfed/unfed/client/openai/openaitest"
)

const benchChat = `{"model":"qwen","messages":[{"role":"system","content":"You tell short stories."},
{"role":"user","content":"Once upon a time"},{"role":"assistant","content":"there was a dog."},
{"role":"user","content":"Go on."}],"max_tokens":256,"temperature":0.7,"top_p":0.9,"seed":1,
"stop":["THE END"],"stream":true,"stream_options":{"include_usage":true}}`

func BenchmarkParseChatRequest(b *testing.B) {
	body := []byte(benchChat)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, apiErr := openai.ParseChatRequest(body); apiErr != nil {
			b.Fatal(apiErr)
		}
	}
}

// BenchmarkChatStreamPerToken measures the front end's cost per streamed
// token over a real loopback HTTP connection: stop-sequence scan, JSON
// chunk, SSE write and flush, and the client reading it.
func BenchmarkChatStreamPerToken(b *testing.B) {
	const tokens = 256
	pieces := make([]string, tokens)
	for i := range pieces {
		pieces[i] = " word"
	}
	backend := &openaitest.Backend{ModelList: []openai.Model{{ID: "qwen", ChatTemplate: "<|im_start|>"}}, Pieces: pieces}
	srv := newServer(b, backend, openai.Options{}).URL
	b.ResetTimer()
	for b.Loop() {
		req, _ := http.NewRequestWithContext(context.Background(), "POST", srv+"/v1/chat/completions", strings.NewReader(benchChat))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || n < tokens*100 {
			b.Fatalf("status %d, %d bytes", resp.StatusCode, n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*tokens), "ns/token")
}
