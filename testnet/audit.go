package testnet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/unfed/unfed/compute/audit"
	"github.com/unfed/unfed/compute/model"
	"github.com/unfed/unfed/compute/sample"
	"github.com/unfed/unfed/compute/tokenizer"
	"github.com/unfed/unfed/relay/daemon"
)

// `unfed audit` (spec/10 §8): run a local network of real processes whose
// relays record every compute and edge message they decrypt or send
// (audit_capture), send prompts through the client's OpenAI API, stop the
// network, and run compute/audit's attacks against each relay's record.

// AuditOptions configure one audit run.
type AuditOptions struct {
	// Mode is the circuit mode audited: anonymous or confidential.
	Mode string
	// Model is the model file; Tokenizer its llama2.c tokenizer, if any.
	Model, Tokenizer string
	// Dir holds the network's state; empty: a temporary directory, removed
	// afterwards.
	Dir string
	// BinDir holds the binaries; empty: next to the running executable.
	BinDir string
	// Prompts are sent in order; empty: audit.Prompts.
	Prompts []string
	// MaxTokens is the completion length of every request.
	MaxTokens int
	// Seed seeds the baselines' random data.
	Seed uint64
	// Interval is the consensus interval (default 6s: a consensus stays valid 3 periods, long enough on a loaded machine).
	Interval time.Duration
}

// AuditCommand implements `unfed audit --mode anonymous|confidential
// --model FILE [--dir DIR] [--prompts FILE] [--max-tokens N]`.
func AuditCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := daemon.NewFlagSet("audit", "[flags]", stderr)
	var o AuditOptions
	var promptsFile string
	fs.StringVar(&o.Mode, "mode", "confidential", "circuit mode to audit: anonymous or confidential")
	fs.StringVar(&o.Model, "model", "", "model `FILE` (default: stories260K.gguf from $UNFED_MODEL_DIR, else the copy built into unfed)")
	fs.StringVar(&o.Tokenizer, "tokenizer", "", "llama2.c tokenizer.bin for a .bin model")
	fs.StringVar(&o.Dir, "dir", "", "directory for the network's state, logs and capture files (default: a temporary directory, removed afterwards)")
	fs.StringVar(&promptsFile, "prompts", "", "`FILE` of prompts: a JSON array of strings, or one prompt per line (default: 12 built-in prompts)")
	fs.IntVar(&o.MaxTokens, "max-tokens", 4, "tokens to generate per prompt (greedy)")
	fs.Uint64Var(&o.Seed, "seed", 1, "seed of the baselines' random data")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 || (o.Mode != "anonymous" && o.Mode != "confidential") || o.MaxTokens < 1 {
		return errors.New("audit: usage: unfed audit --mode anonymous|confidential [--model FILE] [--dir DIR] [--prompts FILE] [--max-tokens N]")
	}
	if promptsFile != "" {
		ps, err := ReadPrompts(promptsFile)
		if err != nil {
			return err
		}
		o.Prompts = ps
	}
	rep, err := Audit(ctx, o, stderr)
	if err != nil {
		return err
	}
	if err := rep.WriteLines(stdout); err != nil {
		return err
	}
	return rep.WriteTable(stdout)
}

// ReadPrompts reads a prompts file: a JSON array of strings, or else one
// prompt per non-empty line.
func ReadPrompts(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	var ps []string
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '[' {
		if err := json.Unmarshal(t, &ps); err != nil {
			return nil, fmt.Errorf("audit: %s: %w", path, err)
		}
	} else {
		for _, l := range strings.Split(string(b), "\n") {
			if l = strings.TrimRight(l, "\r"); strings.TrimSpace(l) != "" {
				ps = append(ps, l)
			}
		}
	}
	if len(ps) == 0 {
		return nil, fmt.Errorf("audit: %s holds no prompt", path)
	}
	return ps, nil
}

// captureFile is where a relay node writes its records.
func captureFile(node *Node) string { return filepath.Join(node.Dir, "data", "capture.log") }

// Audit runs the network, the prompts and the analysis. progress receives
// what the run does.
func Audit(ctx context.Context, o AuditOptions, progress io.Writer) (rep *audit.Report, err error) {
	if o.Mode != "anonymous" && o.Mode != "confidential" {
		return nil, fmt.Errorf("audit: mode %q: want anonymous or confidential", o.Mode)
	}
	if len(o.Prompts) == 0 {
		o.Prompts = audit.Prompts
	}
	if o.MaxTokens <= 0 {
		o.MaxTokens = 4
	}
	if o.Interval <= 0 {
		o.Interval = 6 * time.Second
	}
	if o.Dir == "" {
		dir, err := os.MkdirTemp("", "unfed-audit-")
		if err != nil {
			return nil, fmt.Errorf("audit: %w", err)
		}
		defer os.RemoveAll(dir)
		o.Dir = dir
	} else if abs, err := filepath.Abs(o.Dir); err == nil {
		o.Dir = abs
		if n, err := Load(o.Dir); err == nil && anyAlive(n) {
			return nil, fmt.Errorf("audit: a testnet is running in %s", o.Dir)
		}
		if err := os.RemoveAll(o.Dir); err != nil {
			return nil, fmt.Errorf("audit: %w", err)
		}
	}
	if o.BinDir == "" {
		if o.BinDir, err = BinDir(); err != nil {
			return nil, err
		}
	}
	if err := relayHasCapture(ctx, o.BinDir); err != nil {
		return nil, err
	}
	path, err := ResolveModel(ctx, o.Model, filepath.Join(o.Dir, "models"), progress)
	if err != nil {
		return nil, err
	}
	tok, err := audit.LoadTokenizer(path, o.Tokenizer)
	if err != nil {
		return nil, err
	}
	// The truth the relays' records are scored against: the tokens the
	// client feeds (as it tokenizes) and the tokens greedy decoding
	// generates (checked against the completions below).
	truths, err := greedyTruths(path, tok, o.Prompts, o.MaxTokens)
	if err != nil {
		return nil, err
	}

	n, err := Generate(Spec{Dir: filepath.Join(o.Dir, "net"), BinDir: o.BinDir, Model: path, Tokenizer: o.Tokenizer,
		Mode: o.Mode, AuditCapture: true, Replicas: 1, Interval: o.Interval, Client: true})
	if err != nil {
		return nil, err
	}
	var relays []*Node
	for _, node := range n.Nodes {
		if node.Kind == "relay" {
			relays = append(relays, node)
		}
	}
	stopped := false
	defer func() {
		if !stopped {
			n.StopAll(10 * time.Second)
		}
	}()
	fmt.Fprintf(progress, "audit: starting %d nodes in %s (%s circuits)\n", len(n.Nodes), n.Spec.Dir, o.Mode)
	if err := n.Start(ctx, false, progress); err != nil {
		return nil, err
	}
	api, _, err := n.ClientAddrs()
	if err != nil {
		return nil, err
	}
	modelID, err := modelForMode(ctx, api, o.Mode)
	if err != nil {
		return nil, err
	}
	// Each request's records are those a relay appended between the file
	// sizes noted before and after it.
	before := make([]map[string]int64, len(o.Prompts))
	after := make([]map[string]int64, len(o.Prompts))
	for i, prompt := range o.Prompts {
		before[i] = captureSizes(relays)
		// A 503 asks to retry later (a consensus between two periods, a
		// circuit being rebuilt); a retry sends the same tokens again.
		text, err := greedyCompletion(ctx, api, modelID, prompt, o.MaxTokens)
		for try := 1; err != nil && errors.Is(err, errUnavailable) && try < 4; try++ {
			fmt.Fprintf(progress, "audit: prompt %d: %v; retrying\n", i+1, err)
			if !waitCtx(ctx, time.Duration(try)*2*time.Second) {
				break
			}
			text, err = greedyCompletion(ctx, api, modelID, prompt, o.MaxTokens)
		}
		if err != nil {
			return nil, fmt.Errorf("audit: prompt %d: %w", i+1, err)
		}
		truths[i].agree(tok, text)
		fmt.Fprintf(progress, "audit: prompt %d/%d: %d tokens, completion %q (%d of %d generated tokens known)\n",
			i+1, len(o.Prompts), len(truths[i].input), text, len(truths[i].generated), truths[i].full)
		after[i] = settle(ctx, relays)
	}
	stopped = true
	if err := n.StopAll(15 * time.Second); err != nil {
		return nil, err
	}

	reqs := make([]audit.Request, len(o.Prompts))
	for i, t := range truths {
		reqs[i] = audit.Request{Prompt: o.Prompts[i], Input: t.input, Skip: t.skip, Generated: t.generated}
	}
	for _, node := range relays {
		recs, err := audit.ReadCapture(captureFile(node))
		if errors.Is(err, os.ErrNotExist) {
			recs, err = nil, nil
		}
		if err != nil {
			return nil, err
		}
		seen := 0
		for i := range reqs {
			var seg []audit.Record
			for _, r := range recs {
				if r.Offset >= before[i][node.Name] && (r.Offset < after[i][node.Name] || i == len(reqs)-1) {
					seg = append(seg, r)
				}
			}
			seen += len(seg)
			if len(seg) > 0 || node.Role == "guard" {
				reqs[i].Captures = append(reqs[i].Captures, audit.Capture{Relay: node.Name, Records: seg})
			}
		}
		if len(recs) > 0 && seen == 0 {
			return nil, fmt.Errorf("audit: %s wrote %d records, none while a request ran: its capture.log is not written through",
				node.Name, len(recs))
		}
	}
	m, err := audit.Open(path)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	fmt.Fprintln(progress, "audit: attacking what each relay recorded")
	return audit.Analyze(m, reqs, audit.Options{Mode: o.Mode, Seed: o.Seed, Progress: progress})
}

// relayHasCapture checks that the relay binary knows audit_capture: a
// relay refuses unknown configuration keys, and without the capture there
// is nothing to audit.
func relayHasCapture(ctx context.Context, bin string) error {
	out, _ := exec.CommandContext(ctx, filepath.Join(bin, "unfed-relay"), "--help").CombinedOutput()
	if !bytes.Contains(out, []byte("audit_capture")) {
		return fmt.Errorf("audit: %s does not support audit_capture (its --help does not list it): the relays could not record what they see",
			filepath.Join(bin, "unfed-relay"))
	}
	return nil
}

// modelForMode returns the API model name that asks for mode: the model id
// with the ":mode" suffix. The client lists a mode only once a path of that
// mode can be built, which for confidential circuits waits for the parties
// and dealers to enter the consensus: it asks again until then (at most
// modeWait), and never falls back to another mode (an audit of
// confidential circuits that measured anonymous ones would report a leak
// as the mode's).
func modelForMode(ctx context.Context, api, mode string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, modeWait)
	defer cancel()
	var seen []string
	for {
		ids, err := listModels(ctx, api)
		if err == nil {
			for _, id := range ids {
				if strings.HasSuffix(id, ":"+mode) {
					return id, nil
				}
			}
			seen = ids
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return "", fmt.Errorf("testnet: the client lists no %s model within %s: %w", mode, modeWait, err)
			}
			return "", fmt.Errorf("testnet: the client lists no %s model within %s (it lists %v)", mode, modeWait, seen)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// modeWait bounds how long an audit waits for the client to offer the
// audited mode.
const modeWait = 2 * time.Minute

// listModels returns the ids of the client's /v1/models.
func listModels(ctx context.Context, api string) ([]string, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", api+"/v1/models", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return nil, fmt.Errorf("status %d: %w", resp.StatusCode, err)
	}
	ids := make([]string, len(list.Data))
	for i, d := range list.Data {
		ids[i] = d.ID
	}
	return ids, nil
}

// errUnavailable marks a completion the client answered 503.
var errUnavailable = errors.New("service unavailable")

// greedyCompletion sends one non-streamed completion at temperature 0.
func greedyCompletion(ctx context.Context, api, modelID, prompt string, maxTokens int) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	body, _ := json.Marshal(map[string]any{"model": modelID, "prompt": prompt, "max_tokens": maxTokens, "temperature": 0})
	req, _ := http.NewRequestWithContext(ctx, "POST", api+"/v1/completions", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode == http.StatusServiceUnavailable {
		return "", fmt.Errorf("%w: %s", errUnavailable, b)
	}
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("completion failed: %d %s", resp.StatusCode, b)
	}
	var r struct {
		Choices []struct {
			Text string `json:"text"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(b, &r); err != nil || len(r.Choices) != 1 {
		return "", fmt.Errorf("bad completion %s: %v", b, err)
	}
	return r.Choices[0].Text, nil
}

// captureSizes returns every relay's capture file size.
func captureSizes(relays []*Node) map[string]int64 {
	m := map[string]int64{}
	for _, node := range relays {
		if st, err := os.Stat(captureFile(node)); err == nil {
			m[node.Name] = st.Size()
		}
	}
	return m
}

// settle waits until no capture file has grown for a while (the last
// messages of a request, a TEARDOWN, arrive after the answer) and returns
// the sizes.
func settle(ctx context.Context, relays []*Node) map[string]int64 {
	const quiet = 400 * time.Millisecond
	last := captureSizes(relays)
	stable := time.Now()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && time.Since(stable) < quiet {
		if !waitCtx(ctx, 100*time.Millisecond) {
			break
		}
		cur := captureSizes(relays)
		for k, v := range cur {
			if last[k] != v {
				stable = time.Now()
			}
		}
		last = cur
	}
	return last
}

// truth is what the audit knows one request fed: the prompt's tokens and
// the generated tokens.
type truth struct {
	input     []int
	skip      int
	generated []int
	full      int // tokens greedy decoding generated locally
}

// greedyTruths tokenizes every prompt as the client does and decodes it
// greedily with the engine.
func greedyTruths(path string, tok *tokenizer.Tokenizer, prompts []string, maxTokens int) ([]*truth, error) {
	sh, err := model.Load(path, model.ShardOptions{})
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	defer sh.Close()
	var out []*truth
	for _, p := range prompts {
		t := &truth{input: tok.Encode(p, tok.AddBOS())}
		if len(t.input) == 0 {
			return nil, fmt.Errorf("audit: prompt %q has no tokens", p)
		}
		if tok.AddBOS() && t.input[0] == tok.BOS() {
			t.skip = 1
		}
		ss, err := sh.NewSession(model.SessionOptions{})
		if err != nil {
			return nil, fmt.Errorf("audit: %w", err)
		}
		lg, err := ss.ForwardTokens(t.input, 0)
		for err == nil && len(t.generated) < maxTokens {
			id := sample.Argmax(lg)
			if tok.IsEOG(id) {
				break
			}
			t.generated = append(t.generated, id)
			if len(t.generated) < maxTokens {
				lg, err = ss.ForwardTokens([]int{id}, len(t.input)+len(t.generated)-1)
			}
		}
		ss.Close()
		if err != nil {
			return nil, fmt.Errorf("audit: %w", err)
		}
		t.full = len(t.generated)
		out = append(out, t)
	}
	return out, nil
}

// agree keeps the longest prefix of the locally generated tokens whose text
// is a prefix of the completion the circuit returned: a confidential
// circuit computes in fixed point and may pick another token where the top
// two logits are close, after which the audit does not know what was fed.
func (t *truth) agree(tok *tokenizer.Tokenizer, completion string) {
	for k := len(t.generated); k >= 0; k-- {
		d := tok.NewStreamDecoder()
		for _, id := range t.input {
			d.Next(id)
		}
		var s strings.Builder
		for _, id := range t.generated[:k] {
			s.WriteString(d.Next(id))
		}
		if k == len(t.generated) {
			s.WriteString(d.Flush())
		}
		if strings.HasPrefix(completion, s.String()) {
			t.generated = t.generated[:k]
			return
		}
	}
}
