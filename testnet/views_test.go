package testnet

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/unfed/unfed/compute/gguf"
	"github.com/unfed/unfed/compute/model"
	"github.com/unfed/unfed/compute/tokenizer"
)

// secrets are byte patterns that would betray a prompt if a relay saw them.
type secrets struct {
	tokenRuns   [][]byte // three consecutive token ids as u32 BE, u32 LE, u16 BE, u16 LE
	embedRows   [][]byte // 16-byte windows of the embedding rows of the tokens (f32 LE)
	activations [][]byte // 16-byte windows of the block-0 output rows (f32 LE)
	logits      [][]byte // 16-byte windows of dense logits (f32 LE) and top-1 (id, value) pairs
}

// localSecrets runs the prompt and its greedy continuation through the local
// engine and collects every encoding of tokens, embeddings, activations and
// logits a relay must not see.
func localSecrets(t *testing.T, path, prompt string, steps int) *secrets {
	t.Helper()
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tok, err := tokenizer.FromGGUF(f)
	if err != nil {
		t.Fatal(err)
	}
	full, err := model.Load(path, model.ShardOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer full.Close()
	sess, err := full.NewSession(model.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	s := &secrets{}
	ids := tok.Encode(prompt, true)
	logits, err := sess.ForwardTokens(ids, 0)
	for i := 0; i < steps && err == nil; i++ {
		next := argmax(logits)
		s.logits = append(s.logits, windows(logits, 16)...)
		pair := make([]byte, 8)
		binary.BigEndian.PutUint32(pair, uint32(next))
		binary.BigEndian.PutUint32(pair[4:], math.Float32bits(logits[next]))
		s.logits = append(s.logits, pair)
		ids = append(ids, next)
		logits, err = sess.ForwardTokens([]int{next}, len(ids)-1)
	}
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+3 <= len(ids); i++ {
		for _, enc := range []func([]byte, uint32) []byte{binary.BigEndian.AppendUint32, binary.LittleEndian.AppendUint32} {
			var b []byte
			for _, id := range ids[i : i+3] {
				b = enc(b, uint32(id))
			}
			s.tokenRuns = append(s.tokenRuns, b)
		}
		for _, enc := range []func([]byte, uint16) []byte{binary.BigEndian.AppendUint16, binary.LittleEndian.AppendUint16} {
			var b []byte
			for _, id := range ids[i : i+3] {
				b = enc(b, uint16(id))
			}
			s.tokenRuns = append(s.tokenRuns, b)
		}
	}
	emb, cfg, err := model.EmbeddingF32(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		s.embedRows = append(s.embedRows, windows(emb[id*cfg.Dim:(id+1)*cfg.Dim], 16)...)
	}
	// The residual stream after every layer but the last, as f32 and as the
	// big-endian fixed point at scale 2^16 that shares add up to.
	for l := 1; l < cfg.NLayers; l++ {
		sh, err := model.Load(path, model.ShardOptions{First: 0, Last: l})
		if err != nil {
			t.Fatal(err)
		}
		ss, err := sh.NewSession(model.SessionOptions{})
		if err != nil {
			t.Fatal(err)
		}
		acts, err := ss.ForwardTokens(ids, 0)
		ss.Close()
		sh.Close()
		if err != nil {
			t.Fatal(err)
		}
		s.activations = append(s.activations, windows(acts, 16)...)
		for i := 0; i+2 <= len(acts); i += 2 {
			var b []byte
			for _, x := range acts[i : i+2] {
				b = binary.BigEndian.AppendUint64(b, uint64(int64(math.Round(float64(x)*(1<<16)))))
			}
			s.activations = append(s.activations, b)
		}
	}
	return s
}

func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

// windows cuts the f32 LE encoding of v into non-overlapping windows of n bytes.
func windows(v []float32, n int) [][]byte {
	var raw []byte
	for _, x := range v {
		raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(x))
	}
	var out [][]byte
	for i := 0; i+n <= len(raw); i += n {
		out = append(out, raw[i:i+n])
	}
	return out
}

// found reports the first pattern of any class that occurs in data. The
// patterns are grouped by length and looked up in a set at every offset of
// data, so recordings of tens of megabytes are searched in one pass per
// length instead of one per pattern.
func (s *secrets) found(data []byte, classes ...string) string {
	sets := map[string][][]byte{"token ids": s.tokenRuns, "embedding rows": s.embedRows, "activations": s.activations, "logits": s.logits}
	byLen := map[int]map[string]string{}
	for _, c := range classes {
		for _, p := range sets[c] {
			if byLen[len(p)] == nil {
				byLen[len(p)] = map[string]string{}
			}
			byLen[len(p)][string(p)] = c
		}
	}
	for n, set := range byLen {
		for i := 0; i+n <= len(data); i++ {
			if c, ok := set[string(data[i:i+n])]; ok {
				return fmt.Sprintf("%s (%x)", c, data[i:i+n])
			}
		}
	}
	return ""
}

// readRecording reads a debug.record_links file into one buffer of frames.
// The relay is still running and may be appending a frame (a late cell of
// the circuit's teardown) as the file is read: a short last record is that
// frame, not yet complete, and is left out.
func readRecording(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	for len(b) >= 4 {
		n := int(binary.BigEndian.Uint32(b))
		if n > len(b)-4 {
			t.Logf("%s: last record incomplete (%d of %d bytes): being written", path, len(b)-4, n)
			break
		}
		out = append(out, b[4:4+n]...)
		b = b[4+n:]
	}
	return out
}

// TestGuardSeesNoActivations records every decrypted link frame each relay of
// a real-process testnet receives while it serves a greedy completion, and
// checks what each role could read: in the default confidential circuit
// neither the guard nor any dealer or MPC party sees a token id, an
// embedding row, an activation or a logit; and the recorder itself finds
// planted patterns (so the search works).
func TestGuardSeesNoActivations(t *testing.T) {
	n := startNetwork(t, Spec{RecordLinks: true})
	api, _, _ := n.ClientAddrs()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const steps = 16
	if _, err := complete(ctx, api, e2ePrompt, steps); err != nil {
		t.Fatal(err)
	}
	sec := localSecrets(t, n.Spec.Model, e2ePrompt, steps)
	circs, err := ClientCircuits(ctx, n)
	if err != nil || len(circs) == 0 {
		t.Fatalf("client circuits: %v", err)
	}
	byFP := map[string]*Node{}
	for _, node := range n.Nodes {
		byFP[node.Fingerprint] = node
	}
	for _, h := range circs[len(circs)-1] {
		node := byFP[h.Fingerprint]
		data := readRecording(t, filepath.Join(node.Dir, "links.rec"))
		if len(data) == 0 {
			t.Fatalf("%s (%s) recorded nothing", node.Name, h.Role)
		}
		var classes []string
		switch h.Role {
		case "guard", "dealer", "party-A", "party-B":
			classes = []string{"token ids", "embedding rows", "activations", "logits"}
		default:
			t.Fatalf("%s: role %s in a confidential circuit", node.Name, h.Role)
		}
		if leak := sec.found(data, classes...); leak != "" {
			t.Errorf("%s (%s) received %s in %d recorded bytes", node.Name, h.Role, leak, len(data))
		}
		// The search is live: the same patterns planted in the recording are found.
		planted := append(append([]byte(nil), data[:len(data)/2]...), sec.activations[0]...)
		planted = append(planted, sec.tokenRuns[0]...)
		if sec.found(planted, "activations") == "" || sec.found(planted, "token ids") == "" {
			t.Fatal("the pattern search does not find planted patterns")
		}
		t.Logf("%s (%s): %d bytes recorded, none of %v", node.Name, h.Role, len(data), classes)
	}
}
