// Package computecli implements the compute engine's command-line verbs as
// library functions, for cmd/unfed to wire in:
//
//	unfed model info FILE
//	unfed model manifest FILE [--shards N]
//	unfed model bundle FILE --out DIR|FILE
//	unfed model synth --shape NAME --dtype f32|f16|q8_0|bf16 --out FILE.gguf [--seed S] [--tokenizer-from FILE]
//	unfed generate --model FILE [--tokenizer tok.bin] --prompt TEXT [--max-tokens N]
//	               [--temperature T] [--top-k K] [--top-p P] [--seed S] [--shards N] [--threads N]
//
// Each verb is a func(ctx, args, stdout, stderr) error with its own
// flag.FlagSet; flags and the positional FILE may come in any order.
package computecli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/unfed/unfed/relay/daemon"
)

// ErrUsage wraps errors in the command line itself.
var ErrUsage = errors.New("computecli: usage")

// parseArgs parses flags that may be interleaved with positional arguments.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUsage, err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	return daemon.NewFlagSet(name, synopsis, stderr)
}

// ResolveModelPath returns name if it names an existing file, else the file
// of that name in $UNFED_MODEL_DIR.
func ResolveModelPath(name string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("%w: no model file given", ErrUsage)
	}
	if st, err := os.Stat(name); err == nil && !st.IsDir() {
		return name, nil
	}
	if dir := os.Getenv("UNFED_MODEL_DIR"); dir != "" && !strings.ContainsRune(name, os.PathSeparator) {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("computecli: model file %q not found (nor in $UNFED_MODEL_DIR)", name)
}
