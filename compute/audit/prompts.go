package audit

import (
	"fmt"
	"os"

	"github.com/unfed/unfed/compute/gguf"
	"github.com/unfed/unfed/compute/model"
	"github.com/unfed/unfed/compute/tokenizer"
)

// Prompts are the audit's built-in prompts: stories like the ones the test
// model was trained on, and the kinds of text people would least like a
// relay to read (credentials, queries, medical and legal records, code,
// numbers, addresses).
var Prompts = []string{
	"Once upon a time, there was a little girl named Lily who loved to play in the park.",
	"My password is hunter2 and my bank PIN is 4096.",
	"SELECT name, salary FROM employees WHERE dept = 'finance' ORDER BY salary DESC;",
	"Patient: Jane Doe, born 1984-03-12. Diagnosis: type 2 diabetes. Metformin 500 mg twice daily.",
	"def add(a, b):\n    return a + b\n\nprint(add(2, 3))",
	"3.14159 2.71828 1.41421 42 1024 65536 -17 0.001",
	"Ship to: 221B Baker Street, London NW1 6XE, United Kingdom.",
	"Tom and his dog Max went to the big red barn to see the new baby cow.",
	"My social security number is 078-05-1120 and my email is alice@example.com.",
	"Dear Dr. Smith, please send me the results of my HIV test from last Tuesday.",
	"The meeting with the lawyers about the divorce is on Friday at 3pm.",
	"One day, a sad bird could not find its nest. A kind boy helped it home.",
}

// LoadTokenizer returns the tokenizer of the model at path: the one embedded
// in a GGUF file, or the llama2.c tokenizer file tok for a llama2.c
// checkpoint.
func LoadTokenizer(path, tok string) (*tokenizer.Tokenizer, error) {
	format, err := model.DetectFormat(path)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	if format == model.FormatGGUF && tok == "" {
		f, err := gguf.Open(path)
		if err != nil {
			return nil, fmt.Errorf("audit: %w", err)
		}
		defer f.Close()
		t, err := tokenizer.FromGGUF(f)
		if err != nil {
			return nil, fmt.Errorf("audit: %w", err)
		}
		return t, nil
	}
	if tok == "" {
		return nil, fmt.Errorf("audit: %s is a llama2.c checkpoint: give its tokenizer file", path)
	}
	cfg, err := model.ReadConfig(path)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	f, err := os.Open(tok)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	defer f.Close()
	t, err := tokenizer.FromLlama2C(f, cfg.Vocab)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	return t, nil
}
