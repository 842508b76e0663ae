package testnet

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/unfed/unfed/compute/computecli"
	"github.com/unfed/unfed/compute/tinymodels"
	"github.com/unfed/unfed/relay/daemon"
)

// Command implements `unfed testnet up|status|down|demo|chaos`.
func Command(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		testnetUsage(stderr)
		return errors.New("testnet: want a subcommand: up, status, down, demo or chaos")
	}
	switch args[0] {
	case "-h", "--help", "-help", "help":
		testnetUsage(stdout)
		return nil
	case "up":
		return cmdUp(ctx, args[1:], stdout, stderr)
	case "status":
		return cmdStatus(args[1:], stdout, stderr)
	case "down":
		return cmdDown(args[1:], stdout, stderr)
	case "demo":
		return cmdDemo(ctx, args[1:], stdout, stderr)
	case "chaos":
		return cmdChaos(ctx, args[1:], stdout, stderr)
	}
	return fmt.Errorf("testnet: unknown subcommand %q (want up, status, down, demo or chaos)", args[0])
}

func testnetUsage(w io.Writer) {
	fmt.Fprint(w, `Usage: unfed testnet SUBCOMMAND [flags]

Subcommands:
  up      start a local network in the background and print the client's addresses
  status  list the nodes and whether each runs (exit status 1 when any is down)
  down    stop every node of the network
  demo    start a network, answer a prompt through it, report what each relay saw, stop
  chaos   start a network with a spare of every role, inject faults under load, report, stop

Run "unfed testnet SUBCOMMAND --help" for its flags.
`)
}

type upFlags struct {
	dir, model, tokenizer, mode string
	shards, replicas            int
	stages, parties, dealers    int
	verifiers                   int
	interval                    time.Duration
	tor, onionRelay, economy    bool
	link                        LinkShape
	linkRate                    string
}

func parseUp(name string, args []string, stderr io.Writer) (*upFlags, error) {
	fs := daemon.NewFlagSet("testnet "+name, "[flags]", stderr)
	f := &upFlags{}
	fs.StringVar(&f.dir, "dir", "testnet-run", "directory for every node's state, configs and logs")
	fs.StringVar(&f.model, "model", "", "model file (default: stories260K.gguf from $UNFED_MODEL_DIR, else the copy built into unfed)")
	fs.StringVar(&f.tokenizer, "tokenizer", "", "llama2.c tokenizer.bin for a .bin model")
	fs.StringVar(&f.mode, "mode", "confidential", "the client's default circuit mode: confidential or anonymous")
	fs.IntVar(&f.shards, "shards", 2, "anonymous compute shards tiling the model's layers")
	fs.IntVar(&f.replicas, "replicas", 2, "relays serving each shard")
	fs.IntVar(&f.stages, "stages", 2, "confidential stages tiling the model's layers")
	fs.IntVar(&f.parties, "parties", 2, "MPC party relays serving each stage (a circuit takes two)")
	fs.IntVar(&f.dealers, "dealers", 0, "dealer relays (default: one per stage)")
	fs.IntVar(&f.verifiers, "verifiers", 0, "verifier relays re-executing the client's audit tickets (spec/11); authorities then re-check fraud proofs")
	fs.DurationVar(&f.interval, "interval", 0, "consensus interval (default 4s, 20s with --tor)")
	fs.BoolVar(&f.tor, "tor", false, "also start a private Tor network on 127.0.0.1 (Debian's tor); the client reaches its guard through it")
	fs.BoolVar(&f.onionRelay, "onion-relay", false, "with --tor: one compute relay listens only as an onion service")
	fs.BoolVar(&f.economy, "economy", false, "require payment: authorities run mints and faucets, relays take PAY and run share-chain nodes, the client pays from a faucet-filled wallet (spec/12)")
	fs.DurationVar(&f.link.Delay, "link-delay", 0, "delay every link to a relay by `D` each way (user-space forwarders; the network then runs in the foreground until interrupted)")
	fs.DurationVar(&f.link.Jitter, "link-jitter", 0, "add up to `J` more delay at random, order kept")
	fs.StringVar(&f.linkRate, "link-rate", "", "limit each link direction to `R` bytes/s (suffixes k, M, G: ×1000)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if f.link.Delay < 0 || f.link.Jitter < 0 {
		return nil, fmt.Errorf("testnet: --link-delay and --link-jitter must not be negative")
	}
	if f.linkRate != "" {
		r, err := parseRate(f.linkRate)
		if err != nil {
			return nil, err
		}
		f.link.Rate = r
	}
	abs, err := filepath.Abs(f.dir)
	if err != nil {
		return nil, fmt.Errorf("testnet: %w", err)
	}
	f.dir = abs
	return f, nil
}

func (f *upFlags) network(ctx context.Context, stderr io.Writer) (*Network, error) {
	if _, err := Load(f.dir); err == nil {
		if n, _ := Load(f.dir); anyAlive(n) {
			return nil, fmt.Errorf("testnet: a testnet is already running in %s (unfed testnet down --dir %s)", f.dir, f.dir)
		}
	}
	if err := os.RemoveAll(f.dir); err != nil {
		return nil, fmt.Errorf("testnet: %w", err)
	}
	model, err := ResolveModel(ctx, f.model, filepath.Join(f.dir, "models"), stderr)
	if err != nil {
		return nil, err
	}
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	return Generate(Spec{Dir: f.dir, BinDir: bin, Model: model, Tokenizer: f.tokenizer,
		Shards: f.shards, Replicas: f.replicas, Stages: f.stages, Parties: f.parties, Dealers: f.dealers, Verifiers: f.verifiers,
		Mode: f.mode, Interval: f.interval, Client: true, Tor: f.tor, OnionRelay: f.onionRelay, Link: f.link, Economy: f.economy})
}

func anyAlive(n *Network) bool {
	for _, node := range n.Nodes {
		if node.Alive() {
			return true
		}
	}
	return false
}

func cmdUp(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f, err := parseUp("up", args, stderr)
	if err != nil {
		return err
	}
	n, err := f.network(ctx, stderr)
	if err != nil {
		return err
	}
	// Forwarders live in this process: with a link shape the network runs
	// in the foreground and stops when this command is interrupted.
	fg := f.link.Active()
	if err := n.Start(ctx, !fg, stderr); err != nil {
		if fg {
			n.StopAll(5 * time.Second)
		} else {
			StopRecorded(n, 5*time.Second, io.Discard)
		}
		return err
	}
	api, socks, err := n.ClientAddrs()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "client api=%s socks=%s\n", api, socks)
	summary(n, stdout)
	if fg {
		fmt.Fprintf(stdout, "links delayed %s (jitter %s, rate %d B/s); interrupt to stop the network\n", f.link.Delay, f.link.Jitter, f.link.Rate)
		<-ctx.Done()
		return n.StopAll(15 * time.Second)
	}
	return nil
}

// parseRate parses a byte rate: an integer with an optional k, M or G
// (powers of 1000).
func parseRate(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "k"):
		mult, s = 1000, strings.TrimSuffix(s, "k")
	case strings.HasSuffix(s, "M"):
		mult, s = 1000*1000, strings.TrimSuffix(s, "M")
	case strings.HasSuffix(s, "G"):
		mult, s = 1000*1000*1000, strings.TrimSuffix(s, "G")
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v <= 0 || v > (1<<62)/mult {
		return 0, fmt.Errorf("testnet: --link-rate %q: want a positive byte rate such as 1M", s)
	}
	return v * mult, nil
}

func summary(n *Network, w io.Writer) {
	fmt.Fprintf(w, "testnet in %s: %d nodes, model %s\n", n.Spec.Dir, len(n.Nodes), filepath.Base(n.Spec.Model))
	for _, node := range n.Nodes {
		extra := ""
		if node.Role == "compute" || node.Role == "party" {
			extra = fmt.Sprintf(" layers [%d,%d)", node.Layers[0], node.Layers[1])
		}
		fmt.Fprintf(w, "  %-8s %-9s %s%s\n", node.Name, node.Role, node.Fingerprint, extra)
	}
}

func cmdStatus(args []string, stdout, stderr io.Writer) error {
	fs := daemon.NewFlagSet("testnet status", "[--dir DIR]", stderr)
	dir := fs.String("dir", "testnet-run", "testnet directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	n, err := Load(*dir)
	if err != nil {
		return err
	}
	up := 0
	for _, node := range n.Nodes {
		state := "down"
		if node.Alive() {
			state = "up"
			up++
		}
		var ls []string
		for k, v := range node.Listeners {
			ls = append(ls, k+"="+v)
		}
		fmt.Fprintf(stdout, "%-8s %-9s %-4s pid=%d %s\n", node.Name, node.Role, state, node.Pid, strings.Join(ls, " "))
	}
	fmt.Fprintf(stdout, "%d of %d nodes up\n", up, len(n.Nodes))
	if up < len(n.Nodes) {
		return fmt.Errorf("testnet: %d of %d nodes down", len(n.Nodes)-up, len(n.Nodes))
	}
	return nil
}

func cmdDown(args []string, stdout, stderr io.Writer) error {
	fs := daemon.NewFlagSet("testnet down", "[--dir DIR]", stderr)
	dir := fs.String("dir", "testnet-run", "testnet directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	n, err := Load(*dir)
	if err != nil {
		return err
	}
	return StopRecorded(n, 10*time.Second, stdout)
}

// cmdDemo starts a testnet, streams one completion through the overlay,
// reports what each relay of the circuit saw, and shuts everything down.
func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	f, err := parseUp("demo", args, stderr)
	if err != nil {
		return err
	}
	n, err := f.network(ctx, stderr)
	if err != nil {
		return err
	}
	defer func() {
		if stopErr := n.StopAll(10 * time.Second); stopErr != nil && err == nil {
			err = stopErr
		}
		if err == nil {
			fmt.Fprintln(stderr, "testnet: every node stopped cleanly")
		}
	}()
	fmt.Fprintf(stderr, "testnet: starting %d nodes in %s\n", len(n.Nodes), n.Spec.Dir)
	if err := n.Start(ctx, false, stderr); err != nil {
		return err
	}
	api, _, err := n.ClientAddrs()
	if err != nil {
		return err
	}
	// Ask for the network's mode by name: the client lists anonymous
	// circuits before the MPC parties are Running, and a demo of a
	// confidential network must not answer through another mode.
	modelID, err := modelForMode(ctx, api, n.Spec.Mode)
	if err != nil {
		return fmt.Errorf("testnet: demo: %w", err)
	}
	prompt := "Once upon a time"
	fmt.Fprintf(stdout, "\nmode: %s\nprompt: %s\ncompletion: ", n.Spec.Mode, prompt)
	text, err := StreamCompletion(ctx, api, CompletionRequest{Model: modelID, Prompt: prompt, MaxTokens: demoTokens, Temperature: 0}, stdout)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	if strings.TrimSpace(text) == "" {
		return errors.New("testnet: the completion was empty")
	}
	local, err := demoReference(ctx, n.Spec.Model, n.Spec.Tokenizer, prompt, demoTokens)
	if err != nil {
		return err
	}
	if local != text {
		return fmt.Errorf("testnet: the overlay's completion differs from local greedy generation %q", local)
	}
	fmt.Fprintln(stdout, "local greedy generation of the same model: identical")
	return CircuitReport(ctx, n, stdout)
}

// demoTokens is how many tokens the demo generates.
const demoTokens = 48

// demoReference generates from the model in this process, greedily, as the
// reference the overlay's answer must equal.
func demoReference(ctx context.Context, model, tok, prompt string, maxTokens int) (string, error) {
	args := []string{"--model", model, "--prompt", prompt, "--max-tokens", fmt.Sprint(maxTokens), "--temperature", "0"}
	if tok != "" {
		args = append(args, "--tokenizer", tok)
	}
	var out bytes.Buffer
	if err := computecli.Generate(ctx, args, &out, io.Discard); err != nil {
		return "", fmt.Errorf("testnet: local generation: %w", err)
	}
	return strings.TrimSuffix(out.String(), "\n"), nil
}

// CompletionRequest is the subset of the OpenAI completion request the
// harness sends.
type CompletionRequest struct {
	Model       string  `json:"model"`
	Prompt      string  `json:"prompt"`
	MaxTokens   int     `json:"max_tokens"`
	Temperature float64 `json:"temperature"`
	Stream      bool    `json:"stream"`
}

// FirstModel returns the first model id the client's API lists for its
// default mode (an id without a ":<mode>" suffix). A 503 (no valid
// consensus for a moment, as on a loaded machine between two consensus
// periods), or a list where only another mode is servable yet (the first
// consensus may lack a stage's parties), is retried for up to 30 s.
func FirstModel(ctx context.Context, api string) (string, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		id, status, err := firstModel(ctx, api)
		if err == nil || (status != http.StatusServiceUnavailable && !errors.Is(err, errNoDefaultMode)) || time.Now().After(deadline) {
			return id, err
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func firstModel(ctx context.Context, api string) (string, int, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", api+"/v1/models", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", 0, fmt.Errorf("testnet: %w", err)
	}
	defer resp.Body.Close()
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || len(list.Data) == 0 {
		return "", resp.StatusCode, fmt.Errorf("testnet: the client lists no model (status %d, %v)", resp.StatusCode, err)
	}
	for _, m := range list.Data {
		if !strings.Contains(m.ID, ":") {
			return m.ID, resp.StatusCode, nil
		}
	}
	return "", resp.StatusCode, fmt.Errorf("%w (listed: %v)", errNoDefaultMode, list.Data)
}

// errNoDefaultMode: the client lists models, none in its default mode.
var errNoDefaultMode = errors.New("testnet: the client lists no model in its default mode yet")

// StreamCompletion sends a streamed completion request and writes the text
// to w as it arrives; it returns the whole text.
func StreamCompletion(ctx context.Context, api string, cr CompletionRequest, w io.Writer) (string, error) {
	if cr.Model == "" {
		m, err := FirstModel(ctx, api)
		if err != nil {
			return "", err
		}
		cr.Model = m
	}
	cr.Stream = true
	body, _ := json.Marshal(cr)
	req, _ := http.NewRequestWithContext(ctx, "POST", api+"/v1/completions", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("testnet: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return "", fmt.Errorf("testnet: completion failed: %d %s", resp.StatusCode, b)
	}
	var out strings.Builder
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if line == "[DONE]" {
			// Read to the end, so the connection is kept for the next
			// request (as an HTTP client library would).
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
			return out.String(), nil
		}
		var chunk struct {
			Choices []struct {
				Text string `json:"text"`
			} `json:"choices"`
			Error *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal([]byte(line), &chunk); err != nil {
			return out.String(), fmt.Errorf("testnet: bad stream chunk: %w", err)
		}
		if chunk.Error != nil {
			return out.String(), fmt.Errorf("testnet: completion failed mid-stream: %s", chunk.Error.Message)
		}
		for _, c := range chunk.Choices {
			out.WriteString(c.Text)
			io.WriteString(w, c.Text)
		}
	}
	if err := sc.Err(); err != nil {
		return out.String(), fmt.Errorf("testnet: %w", err)
	}
	return out.String(), errors.New("testnet: stream ended without [DONE]")
}

// ResolveModel finds the model a testnet runs: the given path; else
// stories260K.gguf in $UNFED_MODEL_DIR; else the copy embedded in the binary
// (compute/tinymodels), written to modelDir after its SHA-256 is checked. It
// needs no network.
func ResolveModel(ctx context.Context, given, modelDir string, stderr io.Writer) (string, error) {
	if given != "" {
		p, err := computecli.ResolveModelPath(given)
		if err != nil {
			return "", fmt.Errorf("testnet: --model %s: %w", given, err)
		}
		return filepath.Abs(p)
	}
	if dir := os.Getenv("UNFED_MODEL_DIR"); dir != "" {
		if p := filepath.Join(dir, tinymodels.Default); fileExists(p) {
			if err := tinymodels.Verify(p); err != nil {
				return "", fmt.Errorf("testnet: $UNFED_MODEL_DIR: %w", err)
			}
			return filepath.Abs(p)
		}
	}
	p, err := tinymodels.Install(modelDir)
	if err != nil {
		return "", fmt.Errorf("testnet: %w", err)
	}
	return filepath.Abs(p)
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}
