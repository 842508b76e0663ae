package daemon

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"
)

// TestNewFlagSetHelp: --help prints GNU-style flags and is flag.ErrHelp;
// both spellings of a flag parse.
func TestNewFlagSetHelp(t *testing.T) {
	var out bytes.Buffer
	fs := NewFlagSet("testnet up", "[flags]", &out)
	fs.String("dir", "testnet-run", "state `DIR`")
	fs.Int("shards", 2, "shards")
	if err := fs.Parse([]string{"--help"}); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	got := out.String()
	for _, want := range []string{"Usage: unfed testnet up [flags]", "  --dir DIR\n      state DIR (default testnet-run)", "  --shards INT"} {
		if !strings.Contains(got, want) {
			t.Errorf("usage lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "\n  -dir") {
		t.Errorf("one-dash flag in usage:\n%s", got)
	}
	for _, args := range [][]string{{"--dir", "a"}, {"-dir", "a"}, {"--dir=a"}} {
		fs := NewFlagSet("x", "", &out)
		d := fs.String("dir", "", "")
		if err := fs.Parse(args); err != nil || *d != "a" {
			t.Errorf("%v: %v %q", args, err, *d)
		}
	}
}
