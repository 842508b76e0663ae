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
	n, vn := 0, 0
	sums := map[[2]uint64]uint64{} // (x, element) -> the sum of the parties' veval outputs
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
		case "vkey":
			b, err := hex.DecodeString(f[1])
			if err != nil {
				t.Fatal(err)
			}
			kk, rest, err := Decode(b)
			if err != nil || len(rest) != 0 || kk.Elems != 2 {
				t.Fatalf("vector key: %v", err)
			}
			k = &kk
		case "veval":
			x, _ := strconv.ParseUint(f[1], 10, 64)
			e, _ := strconv.Atoi(f[2])
			want, _ := strconv.ParseUint(f[3], 16, 64)
			out := make([]uint64, k.Elems)
			if err := k.EvalVec(x, out); err != nil {
				t.Fatal(err)
			}
			all := [][]uint64{make([]uint64, x+1), make([]uint64, x+1)}
			if err := k.EvalAllVec(all); err != nil {
				t.Fatal(err)
			}
			if out[e] != want || all[e][x] != want {
				t.Fatalf("vector eval(%d)[%d] = %016x (EvalAllVec %016x), want %016x", x, e, out[e], all[e][x], want)
			}
			sums[[2]uint64{x, uint64(e)}] += want
			vn++
		}
	}
	if n == 0 || vn == 0 {
		t.Fatal("no vectors")
	}
	for xe, v := range sums {
		want := uint64(0)
		if xe[0] == 5 {
			want = []uint64{1000, 37}[xe[1]]
		}
		if v != want {
			t.Fatalf("vector keys: sum at x=%d element %d is %d, want %d", xe[0], xe[1], v, want)
		}
	}
}
