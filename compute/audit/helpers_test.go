package audit

import (
	"bufio"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/unfed/unfed/compute/model"
	"github.com/unfed/unfed/compute/modeltest"
	"github.com/unfed/unfed/compute/sample"
	"github.com/unfed/unfed/compute/tensor"
	"github.com/unfed/unfed/compute/tokenizer"
)

const modelName = "stories260K.gguf"

var (
	modelOnce sync.Once
	sharedM   *Model
	sharedTok *tokenizer.Tokenizer
	modelErr  error
)

// testModel returns the stories260K attack model and tokenizer, loaded once
// for the package's tests.
func testModel(t testing.TB) (*Model, *tokenizer.Tokenizer, string) {
	t.Helper()
	path := modeltest.Path(t, modelName)
	modelOnce.Do(func() {
		sharedM, modelErr = Open(path)
		if modelErr == nil {
			sharedTok, modelErr = LoadTokenizer(path, "")
		}
	})
	if modelErr != nil {
		t.Fatal(modelErr)
	}
	return sharedM, sharedTok, path
}

// engineRows runs the model's layers [0, L) over ids in one batch, as a
// relay's previous hop does, and returns the residual stream entering
// layer L, one row per position. L = 0 gives the embedding rows.
func engineRows(t testing.TB, m *Model, path string, L int, ids []int) [][]float32 {
	t.Helper()
	dim := m.Config().Dim
	rows := make([][]float32, len(ids))
	if L == 0 {
		for i, id := range ids {
			rows[i] = m.Embedding(id)
		}
		return rows
	}
	sh, err := model.Load(path, model.ShardOptions{Last: L})
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Close()
	ss, err := sh.NewSession(model.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	out, err := ss.ForwardTokens(ids, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range rows {
		rows[i] = out[i*dim : (i+1)*dim]
	}
	return rows
}

// greedy decodes n tokens after prompt with the whole model and returns
// them with the logits each was the argmax of.
func greedy(t testing.TB, path string, prompt []int, n int) ([]int, [][]float32) {
	t.Helper()
	sh, err := model.Load(path, model.ShardOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Close()
	ss, err := sh.NewSession(model.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	lg, err := ss.ForwardTokens(prompt, 0)
	if err != nil {
		t.Fatal(err)
	}
	var gen []int
	var logits [][]float32
	for len(gen) < n {
		id := sample.Argmax(lg)
		gen = append(gen, id)
		logits = append(logits, lg)
		if len(gen) == n {
			break
		}
		if lg, err = ss.ForwardTokens([]int{id}, len(prompt)+len(gen)-1); err != nil {
			t.Fatal(err)
		}
	}
	return gen, logits
}

// promptIDs tokenizes the built-in prompts as the client does (BOS first).
func promptIDs(tok *tokenizer.Tokenizer, prompts []string) [][]int {
	var out [][]int
	for _, p := range prompts {
		out = append(out, tok.Encode(p, tok.AddBOS()))
	}
	return out
}

// uniformRows returns n rows of uniform 64-bit words read as fixed point.
func uniformRows(rng *rand.Rand, n, dim int) [][]float32 {
	rows := make([][]float32, n)
	for i := range rows {
		w := make([]uint64, dim)
		for j := range w {
			w[j] = rng.Uint64()
		}
		rows[i] = FixedToFloat(w, FixedScale)
	}
	return rows
}

// gaussianRows returns n rows of Gaussian values with the mean and standard
// deviation of like.
func gaussianRows(rng *rand.Rand, like [][]float32, n int) [][]float32 {
	var all []float32
	for _, r := range like {
		all = append(all, r...)
	}
	mean, std := meanStd(all)
	dim := len(like[0])
	rows := make([][]float32, n)
	for i := range rows {
		rows[i] = make([]float32, dim)
		for j := range rows[i] {
			rows[i][j] = float32(mean + std*rng.NormFloat64())
		}
	}
	return rows
}

// f16Rows rounds rows through binary16, as an f16 edge carries them.
func f16Rows(rows [][]float32) [][]float32 {
	out := make([][]float32, len(rows))
	for i, r := range rows {
		out[i] = make([]float32, len(r))
		for j, x := range r {
			out[i][j] = tensor.F16ToF32(tensor.F32ToF16(x))
		}
	}
	return out
}

func countEqual(got, want []int) int {
	n := 0
	for i := range want {
		if i < len(got) && got[i] == want[i] {
			n++
		}
	}
	return n
}

// captureFile writes records to a capture file in dir and returns its path
// and the file size after each group of records (the offsets a harness
// notes between requests).
func captureFile(t testing.TB, dir, name string, groups [][]Record) (string, []int64) {
	t.Helper()
	p := filepath.Join(dir, name)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	var ends []int64
	var size int64
	var hdr []byte
	for _, g := range groups {
		for _, r := range g {
			hdr = AppendRecord(hdr[:0], r.Dir, nil)
			binary.BigEndian.PutUint32(hdr[1:], uint32(len(r.Msg)))
			w.Write(hdr)
			w.Write(r.Msg)
			size += int64(len(hdr) + len(r.Msg))
		}
		ends = append(ends, size)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p, ends
}

// split assigns the records of a capture file to requests by the file sizes
// noted after each request, as the audit harness does.
func split(recs []Record, ends []int64) [][]Record {
	out := make([][]Record, len(ends))
	for _, r := range recs {
		for i, e := range ends {
			if r.Offset < e {
				out[i] = append(out[i], r)
				break
			}
		}
	}
	return out
}

func ratio(n, d int) float64 {
	if d == 0 {
		return math.NaN()
	}
	return float64(n) / float64(d)
}
