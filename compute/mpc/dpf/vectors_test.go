package dpf

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// checkVectors reads spec/vectors/mpc/dpf.txt: lines "key <hex>" followed by
// "eval <x> <hex u64>" lines giving the party's output at x.
func checkVectors(t *testing.T) {
	path := filepath.Join("..", "..", "..", "spec", "vectors", "mpc", "dpf.txt")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read vectors: %v", err)
	}
	var k *Key
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch f[0] {
		case "key":
			b, err := hex.DecodeString(f[1])
			if err != nil {
				t.Fatal(err)
			}
			kk, rest, err := Decode(b)
			if err != nil || len(rest) != 0 {
				t.Fatalf("vector key: %v", err)
			}
			k = &kk
		case "eval":
			x, _ := strconv.ParseUint(f[1], 10, 64)
			want, _ := strconv.ParseUint(f[2], 16, 64)
			if got := k.Eval(x); got != want {
				t.Fatalf("vector eval(%d) = %016x, want %016x", x, got, want)
			}
			n++
		}
	}
	if n == 0 {
		t.Fatal("no vectors")
	}
}
