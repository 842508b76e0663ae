package tokenizer

import (
	"os"
	"testing"

	"github.com/unfed/unfed/compute/modeltest"

	"github.com/unfed/unfed/compute/gguf"
)

func ggufTokenizer(t testing.TB, name string) *Tokenizer {
	t.Helper()
	f, err := gguf.Open(modeltest.Path(t, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tok, err := FromGGUF(f)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func llama2cTokenizer(t testing.TB) *Tokenizer {
	t.Helper()
	fd, err := os.Open(modeltest.Path(t, "tok512.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	tok, err := FromLlama2C(fd, 512)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
