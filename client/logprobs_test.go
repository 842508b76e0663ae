package client

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strings"
	"testing"

	"github.com/unfed/unfed/client/openai"
	"github.com/unfed/unfed/compute/gguf"
	"github.com/unfed/unfed/compute/model"
	"github.com/unfed/unfed/compute/sample"
	"github.com/unfed/unfed/compute/tokenizer"
	"github.com/unfed/unfed/relay/hop"
)

// localSteps is what local greedy generation of n tokens after prompt
// computes: per step the chosen token, the log-softmax of the logits it was
// chosen from, and those logits.
func localSteps(t *testing.T, path, prompt string, n int) (ids []int, lsm [][]float64, logits [][]float32, tok *tokenizer.Tokenizer) {
	t.Helper()
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	tok, err = tokenizer.FromGGUF(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	sh, err := model.Load(path, model.ShardOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Close()
	ss, err := sh.NewSession(model.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	p := tok.Encode(prompt, tok.AddBOS())
	lg, err := ss.ForwardTokens(p, 0)
	if err != nil {
		t.Fatal(err)
	}
	pos := len(p)
	for range n {
		next := sample.Argmax(lg)
		if tok.IsEOG(next) {
			break
		}
		ids = append(ids, next)
		lsm = append(lsm, sample.LogSoftmax(lg))
		logits = append(logits, append([]float32(nil), lg...))
		if lg, err = ss.ForwardTokens([]int{next}, pos); err != nil {
			t.Fatal(err)
		}
		pos++
	}
	return ids, lsm, logits, tok
}

// apiLogprob is one token's logprobs as either endpoint returns them,
// normalised: its text, log-probability and the top alternatives' texts
// and log-probabilities.
type apiLogprob struct {
	token string
	lp    float64
	top   map[string]float64
}

// postLogprobs runs one greedy request asking for logprobs with top
// alternatives and returns the tokens' logprobs in order.
func postLogprobs(t *testing.T, rc *runningClient, chat, stream bool, modelID string, maxTokens, top int) []apiLogprob {
	t.Helper()
	req := map[string]any{"model": modelID, "max_tokens": maxTokens, "temperature": 0, "stream": stream}
	path := "/v1/completions"
	if chat {
		path = "/v1/chat/completions"
		req["messages"] = []map[string]string{{"role": "user", "content": testPrompt}}
		req["logprobs"], req["top_logprobs"] = true, top
	} else {
		req["prompt"] = testPrompt
		req["logprobs"] = top
	}
	body, _ := json.Marshal(req)
	resp, err := http.Post("http://"+rc.api+path, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
	}
	type chatLP struct {
		Content []struct {
			Token       string  `json:"token"`
			Logprob     float64 `json:"logprob"`
			Bytes       []int   `json:"bytes"`
			TopLogprobs []struct {
				Token   string  `json:"token"`
				Logprob float64 `json:"logprob"`
			} `json:"top_logprobs"`
		} `json:"content"`
	}
	type cmplLP struct {
		Tokens        []string             `json:"tokens"`
		TokenLogprobs []float64            `json:"token_logprobs"`
		TopLogprobs   []map[string]float64 `json:"top_logprobs"`
	}
	var out []apiLogprob
	add := func(raw json.RawMessage) {
		if len(raw) == 0 || string(raw) == "null" {
			return
		}
		if chat {
			var c chatLP
			if err := json.Unmarshal(raw, &c); err != nil {
				t.Fatalf("chat logprobs %s: %v", raw, err)
			}
			for _, e := range c.Content {
				a := apiLogprob{token: e.Token, lp: e.Logprob, top: map[string]float64{}}
				for _, tl := range e.TopLogprobs {
					if _, dup := a.top[tl.Token]; !dup {
						a.top[tl.Token] = tl.Logprob
					}
				}
				out = append(out, a)
			}
			return
		}
		var c cmplLP
		if err := json.Unmarshal(raw, &c); err != nil || len(c.Tokens) != len(c.TokenLogprobs) || len(c.Tokens) != len(c.TopLogprobs) {
			t.Fatalf("completion logprobs %s: %v", raw, err)
		}
		for i := range c.Tokens {
			out = append(out, apiLogprob{token: c.Tokens[i], lp: c.TokenLogprobs[i], top: c.TopLogprobs[i]})
		}
	}
	type choice struct {
		Logprobs json.RawMessage `json:"logprobs"`
	}
	if !stream {
		var r struct {
			Choices []choice `json:"choices"`
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		if err := json.Unmarshal(b, &r); err != nil || len(r.Choices) != 1 {
			t.Fatalf("body %s: %v", b, err)
		}
		add(r.Choices[0].Logprobs)
		return out
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if data == "[DONE]" {
			return out
		}
		var ev struct {
			Choices []choice `json:"choices"`
		}
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			t.Fatalf("event %s: %v", data, err)
		}
		for _, c := range ev.Choices {
			add(c.Logprobs)
		}
	}
	t.Fatal("stream ended without [DONE]")
	return nil
}

// TestLogprobsMatchLocal: on both endpoints, streamed and not, an anonymous
// circuit's logprobs are exactly the log-softmax local generation computes
// for the same tokens (the client applies the head itself, so the logits
// are the engine's bit for bit), and top_logprobs are the most likely
// tokens with theirs.
func TestLogprobsMatchLocal(t *testing.T) {
	n := sharedNet(t)
	const tokens, top = 12, 3
	f, err := gguf.Open(n.modelPath)
	if err != nil {
		t.Fatal(err)
	}
	tk, err := tokenizer.FromGGUF(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	chatPrompt := openai.DetectTemplate(tk.ChatTemplate()).Render([]openai.Message{{Role: "user", Content: testPrompt}})
	rc := startClient(t, n, t.TempDir(), func(c *Config) { c.Circuit.Mode = string(ModeAnonymous) })
	for _, chat := range []bool{false, true} {
		prompt := testPrompt
		if chat {
			prompt = chatPrompt
		}
		want, lsm, logits, tok := localSteps(t, n.modelPath, prompt, tokens)
		for _, stream := range []bool{false, true} {
			name := fmt.Sprintf("chat=%v stream=%v", chat, stream)
			got := postLogprobs(t, rc, chat, stream, n.modelID, tokens, top)
			if len(got) != len(want) {
				t.Fatalf("%s: %d logprobs for %d tokens", name, len(got), len(want))
			}
			for i, g := range got {
				if g.token != string(tok.Piece(want[i])) || g.lp != lsm[i][want[i]] {
					t.Fatalf("%s: token %d: %q %v, local %q %v", name, i, g.token, g.lp, tok.Piece(want[i]), lsm[i][want[i]])
				}
				wantTop := map[string]float64{}
				for _, e := range hop.TopK(logits[i], top) {
					if s := string(tok.Piece(e.ID)); !hasKey(wantTop, s) {
						wantTop[s] = lsm[i][e.ID]
					}
				}
				if !maps.Equal(g.top, wantTop) {
					t.Fatalf("%s: token %d: alternatives %v, local %v", name, i, g.top, wantTop)
				}
			}
		}
	}
}

func hasKey(m map[string]float64, k string) bool {
	_, ok := m[k]
	return ok
}
