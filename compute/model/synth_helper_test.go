package model

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/unfed/unfed/compute/synth"
	"github.com/unfed/unfed/compute/tensor"
)

var (
	synthDir  string
	synthMu   sync.Mutex
	synthMade = map[string]string{}
)

func TestMain(m *testing.M) {
	if spec := os.Getenv(rssProbeEnv); spec != "" {
		os.Exit(runRSSProbe(spec))
	}
	d, err := os.MkdirTemp("", "unfed-model-test")
	if err != nil {
		panic(err)
	}
	synthDir = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

// synthModel writes (once per test binary) a synthetic model of a small shape.
func synthModel(t testing.TB, shape string, dt tensor.DType) string {
	t.Helper()
	synthMu.Lock()
	defer synthMu.Unlock()
	key := shape + "-" + dt.String()
	if p, ok := synthMade[key]; ok {
		return p
	}
	p := filepath.Join(synthDir, key+".gguf")
	if err := synth.WriteFile(p, synth.Options{Shape: synth.Shapes[shape], DType: dt, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	synthMade[key] = p
	return p
}

func synthQwenTiny(t testing.TB) string { return synthModel(t, "qwen2-tiny", tensor.Q8_0) }
