package model

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/unfed/unfed/compute/gguf"
	"github.com/unfed/unfed/compute/modeltest"
	"github.com/unfed/unfed/compute/synth"
	"github.com/unfed/unfed/compute/tensor"
	"github.com/unfed/unfed/compute/tokenizer"
)

// referenceContinuation is the greedy continuation of "Once upon a time" given
// in the shared models README.
const referenceContinuation = ", there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball."

func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

// greedy runs prompt ids then n greedy steps on a whole-model shard.
func greedy(t *testing.T, sh *Shard, prompt []int, n int) []int {
	t.Helper()
	ss, err := sh.NewSession(SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	logits, err := ss.ForwardTokens(prompt, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	pos := len(prompt)
	for i := 0; i < n; i++ {
		id := argmax(logits)
		out = append(out, id)
		if logits, err = ss.ForwardTokens([]int{id}, pos); err != nil {
			t.Fatal(err)
		}
		pos++
	}
	return out
}

func TestReferenceStories260K(t *testing.T) {
	g, err := gguf.Open(modeltest.Path(t, "stories260K.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	tokG, err := tokenizer.FromGGUF(g)
	if err != nil {
		t.Fatal(err)
	}
	tf, err := os.Open(modeltest.Path(t, "tok512.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer tf.Close()
	tokB, err := tokenizer.FromLlama2C(tf, 512)
	if err != nil {
		t.Fatal(err)
	}
	refIDs := tokG.Encode(referenceContinuation, false)
	vecPrompt, vecCont := readGreedyVector(t)
	steps := len(vecCont)
	if steps < 48 {
		t.Fatalf("vector has %d tokens, want >= 48", steps)
	}
	var prev []int
	for _, c := range []struct {
		file string
		tok  *tokenizer.Tokenizer
	}{{"stories260K.gguf", tokG}, {"stories260K.bin", tokB}} {
		sh, err := Load(modeltest.Path(t, c.file), ShardOptions{Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		prompt := c.tok.Encode("Once upon a time", true)
		if prompt[0] != 1 {
			t.Fatalf("%s: prompt does not start with BOS: %v", c.file, prompt)
		}
		if !equalInts(prompt, vecPrompt) {
			t.Fatalf("%s: prompt tokens %v, vector has %v", c.file, prompt, vecPrompt)
		}
		ids := greedy(t, sh, prompt, steps)
		sh.Close()
		if !equalInts(ids, vecCont) {
			t.Fatalf("%s: greedy ids\n%v\nwant (llama2.c run.c)\n%v", c.file, ids, vecCont)
		}
		text := c.tok.Decode(ids)
		if !strings.HasPrefix(text, referenceContinuation) {
			t.Fatalf("%s: greedy continuation\n%q\nwant prefix\n%q", c.file, text, referenceContinuation)
		}
		if prev != nil && !equalInts(prev, ids) {
			t.Fatalf("%s gives different tokens than the GGUF file", c.file)
		}
		prev = ids
	}
	if len(refIDs) > steps {
		t.Fatalf("reference is %d tokens, generated only %d", len(refIDs), steps)
	}
	t.Logf("reference continuation is %d tokens; %d generated and matched across formats", len(refIDs), steps)
}

// readGreedyVector reads spec/vectors/model/stories260K-greedy.txt.
func readGreedyVector(t *testing.T) (prompt, cont []int) {
	t.Helper()
	b, err := os.ReadFile("../../spec/vectors/model/stories260K-greedy.txt")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		var ids []int
		for _, s := range f[1:] {
			n, err := strconv.Atoi(s)
			if err != nil {
				t.Fatalf("vector: %q", line)
			}
			ids = append(ids, n)
		}
		switch f[0] {
		case "prompt":
			prompt = ids
		case "continuation":
			cont = ids
		}
	}
	return prompt, cont
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func sameBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// chainLogits runs the token sequence through the shards in order, prompt
// first then one token at a time, and returns all positions' logits.
func chainLogits(t *testing.T, shards []*Shard, prompt, decode []int) []float32 {
	t.Helper()
	sess := make([]*Session, len(shards))
	for i, sh := range shards {
		var err error
		if sess[i], err = sh.NewSession(SessionOptions{AllLogits: true}); err != nil {
			t.Fatal(err)
		}
		defer sess[i].Close()
	}
	run := func(ids []int, pos int) []float32 {
		x, err := sess[0].ForwardTokens(ids, pos)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range sess[1:] {
			if x, err = s.ForwardActivations(x, len(ids), pos); err != nil {
				t.Fatal(err)
			}
		}
		return x
	}
	out := run(prompt, 0)
	for i, id := range decode {
		out = append(out, run([]int{id}, len(prompt)+i)...)
	}
	return out
}

func loadSplit(t *testing.T, path string, n int, threads int) []*Shard {
	t.Helper()
	src, err := openSource(path)
	if err != nil {
		t.Fatal(err)
	}
	nl := src.cfg.NLayers
	src.close()
	var shards []*Shard
	for _, r := range SplitLayers(nl, n) {
		sh, err := Load(path, ShardOptions{First: r.First, Last: r.Last, Threads: threads})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sh.Close() })
		shards = append(shards, sh)
	}
	return shards
}

func checkShardedEqualsUnsplit(t *testing.T, path string, maxShards int) {
	prompt := []int{1, 5, 9, 33, 60, 7, 100, 3, 42, 17}
	decode := []int{11, 250, 3, 99}
	want := chainLogits(t, loadSplit(t, path, 1, 1), prompt, decode)
	for n := 1; n <= maxShards; n++ {
		got := chainLogits(t, loadSplit(t, path, n, 2), prompt, decode)
		if !sameBits(got, want) {
			t.Fatalf("%d shards: logits differ from the unsplit model", n)
		}
	}
}

func TestShardedEqualsUnsplit(t *testing.T) {
	t.Run("stories260K", func(t *testing.T) {
		checkShardedEqualsUnsplit(t, modeltest.Path(t, "stories260K.gguf"), 5)
	})
	t.Run("qwen2-tiny", func(t *testing.T) {
		checkShardedEqualsUnsplit(t, synthQwenTiny(t), 5)
	})
	for _, dt := range []tensor.DType{tensor.F16, tensor.BF16, tensor.F32} {
		t.Run("llama-tiny-"+dt.String(), func(t *testing.T) {
			checkShardedEqualsUnsplit(t, synthModel(t, "llama-tiny", dt), 4)
		})
	}
}

// TestBatchEqualsStepwise: prefill in one batch gives the same bits as
// feeding the tokens one by one, and 1 thread the same as 2.
func TestBatchEqualsStepwise(t *testing.T) {
	path := modeltest.Path(t, "stories260K.gguf")
	ids := make([]int, 70) // more than maxBatch, so prefill spans batches
	for i := range ids {
		ids[i] = (i*37 + 1) % 512
	}
	var ref []float32
	for _, threads := range []int{1, 2, 3} {
		sh, err := Load(path, ShardOptions{Threads: threads})
		if err != nil {
			t.Fatal(err)
		}
		ss, _ := sh.NewSession(SessionOptions{AllLogits: true})
		batch, err := ss.ForwardTokens(ids, 0)
		if err != nil {
			t.Fatal(err)
		}
		ss2, _ := sh.NewSession(SessionOptions{AllLogits: true})
		var step []float32
		for i, id := range ids {
			l, err := ss2.ForwardTokens([]int{id}, i)
			if err != nil {
				t.Fatal(err)
			}
			step = append(step, l...)
		}
		if !sameBits(batch, step) {
			t.Fatalf("threads %d: batched prefill differs from stepwise", threads)
		}
		if ref == nil {
			ref = batch
		} else if !sameBits(ref, batch) {
			t.Fatalf("threads %d differs from threads 1", threads)
		}
		sh.Close()
	}
}

func TestTruncateReplay(t *testing.T) {
	sh, err := Load(modeltest.Path(t, "stories260K.bin"), ShardOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Close()
	ss, _ := sh.NewSession(SessionOptions{})
	a, _ := ss.ForwardTokens([]int{1, 20, 30, 40}, 0)
	if _, err := ss.ForwardTokens([]int{99, 98}, 4); err != nil {
		t.Fatal(err)
	}
	if err := ss.Truncate(3); err != nil {
		t.Fatal(err)
	}
	if ss.Len() != 3 {
		t.Fatalf("Len after truncate = %d", ss.Len())
	}
	b, err := ss.ForwardTokens([]int{40}, 3)
	if err != nil {
		t.Fatal(err)
	}
	if !sameBits(a, b) {
		t.Fatal("replay after truncate gives different logits")
	}
	if _, err := ss.ForwardTokens([]int{1}, 7); err == nil {
		t.Fatal("forward at a gap position succeeded")
	}
	if err := ss.Truncate(5); err == nil {
		t.Fatal("truncate beyond the end succeeded")
	}
}

func TestLimits(t *testing.T) {
	path := modeltest.Path(t, "stories260K.gguf")
	sh, err := Load(path, ShardOptions{Limits: Limits{MaxSessions: 2, MaxContext: 100}})
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Close()
	s1, err := sh.NewSession(SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s2, err := sh.NewSession(SessionOptions{MaxContext: 10})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sh.NewSession(SessionOptions{}); !errors.Is(err, ErrTooManySessions) {
		t.Fatalf("third session: %v, want ErrTooManySessions", err)
	}
	s1.Close()
	s1.Close() // idempotent: frees exactly one slot
	s3, err := sh.NewSession(SessionOptions{})
	if err != nil {
		t.Fatalf("session after close: %v", err)
	}
	if _, err := sh.NewSession(SessionOptions{}); !errors.Is(err, ErrTooManySessions) {
		t.Fatalf("double close freed two slots: %v", err)
	}
	if _, err := s2.ForwardTokens(make([]int, 11), 0); !errors.Is(err, ErrContextTooLong) {
		t.Fatalf("11 positions with limit 10: %v", err)
	}
	if _, err := s3.ForwardTokens(make([]int, 101), 0); !errors.Is(err, ErrContextTooLong) {
		t.Fatalf("101 positions with shard limit 100: %v", err)
	}
	if _, err := s2.ForwardTokens(make([]int, 10), 0); err != nil {
		t.Fatalf("10 positions with limit 10: %v", err)
	}
	if _, err := s2.ForwardTokens([]int{5}, 0); err == nil {
		t.Fatal("forward at a stale position succeeded")
	}
	if _, err := s3.ForwardTokens([]int{600}, 0); err == nil {
		t.Fatal("token id beyond the vocabulary accepted")
	}

	// Memory budget: room for one session's first KV chunk, not two.
	one := sh.KVBytes(kvGrowMin)
	shB, err := Load(path, ShardOptions{Limits: Limits{MemoryBudget: one + one/2}})
	if err != nil {
		t.Fatal(err)
	}
	defer shB.Close()
	a, _ := shB.NewSession(SessionOptions{})
	b, _ := shB.NewSession(SessionOptions{})
	if _, err := a.ForwardTokens([]int{1, 2}, 0); err != nil {
		t.Fatal(err)
	}
	if shB.MemoryUsed() != one {
		t.Fatalf("MemoryUsed = %d, want %d", shB.MemoryUsed(), one)
	}
	if _, err := b.ForwardTokens([]int{1}, 0); !errors.Is(err, ErrOutOfMemoryBudget) {
		t.Fatalf("second session over budget: %v", err)
	}
	if _, err := a.ForwardTokens(make([]int, kvGrowMin), 2); !errors.Is(err, ErrOutOfMemoryBudget) {
		t.Fatalf("growing over budget: %v", err)
	}
	a.Close()
	if shB.MemoryUsed() != 0 {
		t.Fatalf("MemoryUsed after close = %d", shB.MemoryUsed())
	}
	if _, err := b.ForwardTokens([]int{1}, 0); err != nil {
		t.Fatalf("after the other session closed: %v", err)
	}
}

func TestConcurrentSessions(t *testing.T) {
	sh, err := Load(modeltest.Path(t, "stories260K.gguf"), ShardOptions{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Close()
	prompt := []int{1, 403, 261, 378}
	want := greedy(t, sh, prompt, 20)
	var wg sync.WaitGroup
	errs := make(chan string, 4)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ss, err := sh.NewSession(SessionOptions{})
			if err != nil {
				errs <- err.Error()
				return
			}
			defer ss.Close()
			l, err := ss.ForwardTokens(prompt, 0)
			for i := 0; i < 20 && err == nil; i++ {
				id := argmax(l)
				if id != want[i] {
					errs <- "concurrent session diverged"
					return
				}
				l, err = ss.ForwardTokens([]int{id}, len(prompt)+i)
			}
			if err != nil {
				errs <- err.Error()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}

func TestShardErrors(t *testing.T) {
	path := modeltest.Path(t, "stories260K.gguf")
	for _, r := range [][2]int{{-1, 2}, {3, 3}, {4, 2}, {0, 6}} {
		if _, err := Load(path, ShardOptions{First: r[0], Last: r[1]}); err == nil {
			t.Fatalf("range %v accepted", r)
		}
	}
	mid, err := Load(path, ShardOptions{First: 1, Last: 3})
	if err != nil {
		t.Fatal(err)
	}
	ss, _ := mid.NewSession(SessionOptions{})
	if _, err := ss.ForwardTokens([]int{1}, 0); err == nil {
		t.Fatal("middle shard accepted tokens")
	}
	if _, err := ss.ForwardActivations(make([]float32, 63), 1, 0); err == nil {
		t.Fatal("short activations accepted")
	}
	act, err := ss.ForwardActivations(make([]float32, 64*2), 2, 0)
	if err != nil || len(act) != 128 {
		t.Fatalf("middle shard: %d values, %v", len(act), err)
	}
	mid.Close()
	if _, err := ss.ForwardActivations(make([]float32, 64), 1, 2); !errors.Is(err, ErrClosed) {
		t.Fatalf("after shard close: %v", err)
	}
	if _, err := Load(modeltest.Path(t, "tok512.bin"), ShardOptions{}); err == nil {
		t.Fatal("a tokenizer file loaded as a model")
	}
}

// TestThreadsSameBitsMidShape runs a model wide enough that the engine splits
// its products across threads (the tiny test shapes stay below
// parallelMinWork): the fused q/k/v and gate/up/SiLU passes and the AVX-512
// row pairs must give 1, 2 and 3 threads, split or not, the same bits.
func TestThreadsSameBitsMidShape(t *testing.T) {
	shape := synth.Shape{Name: "qwen2-mid", Arch: "qwen2", Dim: 256, Layers: 2, Heads: 4, KVHeads: 2, FFN: 1184,
		Vocab: 1024, Context: 64, RopeTheta: 1e6, NormEps: 1e-6, QKVBias: true, Tied: true}
	path := filepath.Join(t.TempDir(), "mid.gguf")
	if err := synth.WriteFile(path, synth.Options{Shape: shape, DType: tensor.Q8_0, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	prompt := []int{1, 5, 9, 33, 60, 7, 100, 3, 42, 17}
	decode := []int{11, 250, 3, 99, 1000}
	want := chainLogits(t, loadSplit(t, path, 1, 1), prompt, decode)
	for _, c := range [][2]int{{1, 2}, {1, 3}, {2, 2}} {
		if got := chainLogits(t, loadSplit(t, path, c[0], c[1]), prompt, decode); !sameBits(got, want) {
			t.Fatalf("%d shards, %d threads: logits differ from 1 thread", c[0], c[1])
		}
	}
}
