package computecli

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/unfed/unfed/compute/gguf"
	"github.com/unfed/unfed/compute/model"
	"github.com/unfed/unfed/compute/sample"
	"github.com/unfed/unfed/compute/tokenizer"
)

// Generate implements "unfed generate": local generation, streamed to
// stdout, with prompt and decode speed on stderr. With --shards N the model
// runs as N shards chained in-process, as a circuit would run it.
func Generate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("generate", "--model FILE --prompt TEXT [flags]", stderr)
	modelFlag := fs.String("model", "", "model `FILE` (GGUF or llama2.c checkpoint)")
	tokFlag := fs.String("tokenizer", "", "llama2.c tokenizer.bin `FILE` (for llama2.c checkpoints)")
	prompt := fs.String("prompt", "", "prompt text")
	maxTokens := fs.Int("max-tokens", 128, "tokens to generate")
	temp := fs.Float64("temperature", 0, "sampling temperature; 0 is greedy")
	topK := fs.Int("top-k", 0, "keep the K most likely tokens (0: all)")
	topP := fs.Float64("top-p", 0, "nucleus sampling threshold (0: off)")
	repPen := fs.Float64("repetition-penalty", 0, "repetition penalty (0 or 1: off)")
	seed := fs.Uint64("seed", 0, "sampling seed")
	shards := fs.Int("shards", 1, "run the model as `N` chained shards")
	threads := fs.Int("threads", 0, "goroutines per matrix product (0: all cores)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 || *maxTokens < 0 || *shards < 1 {
		return fmt.Errorf("%w: generate --model FILE --prompt TEXT [--max-tokens N] [--temperature T] [--seed S] [--shards N]", ErrUsage)
	}
	path, err := ResolveModelPath(*modelFlag)
	if err != nil {
		return err
	}
	tok, err := loadTokenizer(path, *tokFlag)
	if err != nil {
		return err
	}
	smp, err := sample.New(sample.Params{Temperature: *temp, TopK: *topK, TopP: *topP,
		RepetitionPenalty: *repPen, Seed: *seed})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUsage, err)
	}
	ch, err := OpenChain(path, *shards, *threads)
	if err != nil {
		return err
	}
	defer ch.Close()
	ids := tok.Encode(*prompt, tok.AddBOS())
	if len(ids) == 0 {
		return fmt.Errorf("%w: empty prompt and no BOS token", ErrUsage)
	}
	for _, id := range ids {
		smp.Accept(id)
	}
	start := time.Now()
	logits, err := ch.Forward(ids)
	if err != nil {
		return err
	}
	prefill := time.Since(start)
	dec := tok.NewStreamDecoder()
	for _, id := range ids {
		dec.Next(id) // prime the decoder's leading-space state with the prompt
	}
	start = time.Now()
	generated := 0
	for generated < *maxTokens {
		if err := ctx.Err(); err != nil {
			return err
		}
		id, err := smp.Sample(logits)
		if err != nil {
			return err
		}
		if tok.IsEOG(id) {
			break
		}
		generated++
		if _, err := io.WriteString(stdout, dec.Next(id)); err != nil {
			return err
		}
		if generated == *maxTokens {
			break
		}
		if logits, err = ch.Forward([]int{id}); err != nil {
			return err
		}
	}
	if _, err := io.WriteString(stdout, dec.Flush()+"\n"); err != nil {
		return err
	}
	decode := time.Since(start)
	fmt.Fprintf(stderr, "prompt: %d tokens, %.1f tok/s; generated: %d tokens, %.1f tok/s (%d shard(s))\n",
		len(ids), float64(len(ids))/prefill.Seconds(), generated, float64(generated)/decode.Seconds(), *shards)
	return nil
}

func loadTokenizer(modelPath, tokPath string) (*tokenizer.Tokenizer, error) {
	format, err := model.DetectFormat(modelPath)
	if err != nil {
		return nil, err
	}
	if format == model.FormatGGUF && tokPath == "" {
		f, err := gguf.Open(modelPath)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return tokenizer.FromGGUF(f)
	}
	if tokPath == "" {
		return nil, fmt.Errorf("%w: llama2.c checkpoints need --tokenizer tokenizer.bin", ErrUsage)
	}
	p, err := ResolveModelPath(tokPath)
	if err != nil {
		return nil, err
	}
	cfg, err := model.ReadConfig(modelPath)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("computecli: %w", err)
	}
	defer f.Close()
	return tokenizer.FromLlama2C(f, cfg.Vocab)
}

// Chain runs a model as shards chained in-process, one session each.
type Chain struct {
	Shards   []*model.Shard
	sessions []*model.Session
	pos      int
}

// OpenChain loads the model at path split into n shards (model.SplitLayers).
func OpenChain(path string, n, threads int) (*Chain, error) {
	cfg, err := model.ReadConfig(path)
	if err != nil {
		return nil, err
	}
	c := &Chain{}
	for _, r := range model.SplitLayers(cfg.NLayers, n) {
		sh, err := model.Load(path, model.ShardOptions{First: r.First, Last: r.Last, Threads: threads})
		if err != nil {
			c.Close()
			return nil, err
		}
		c.Shards = append(c.Shards, sh)
		ss, err := sh.NewSession(model.SessionOptions{})
		if err != nil {
			c.Close()
			return nil, err
		}
		c.sessions = append(c.sessions, ss)
	}
	return c, nil
}

// Forward runs ids at the next positions through every shard and returns
// the last position's logits.
func (c *Chain) Forward(ids []int) ([]float32, error) {
	x, err := c.sessions[0].ForwardTokens(ids, c.pos)
	if err != nil {
		return nil, err
	}
	for _, s := range c.sessions[1:] {
		if x, err = s.ForwardActivations(x, len(ids), c.pos); err != nil {
			return nil, err
		}
	}
	c.pos += len(ids)
	return x, nil
}

// Close closes every session and shard.
func (c *Chain) Close() error {
	for _, s := range c.sessions {
		s.Close()
	}
	for _, sh := range c.Shards {
		sh.Close()
	}
	return nil
}
