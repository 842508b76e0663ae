package testnet

import "testing"

// TestPortPickerNeverRepeats feeds the picker a port source that hands out
// the same ports again (as the kernel may) and checks that it never
// returns one twice and says so when it runs out.
func TestPortPickerNeverRepeats(t *testing.T) {
	seq := []int{40137, 40137, 45473, 40137, 45473, 39343}
	i := 0
	p := &portPicker{host: "127.0.0.1", free: func(string) (int, error) {
		port := seq[i%len(seq)]
		i++
		return port, nil
	}}
	seen := map[int]bool{}
	for range 3 {
		port, err := p.pick()
		if err != nil {
			t.Fatal(err)
		}
		if seen[port] {
			t.Fatalf("port %d handed out twice", port)
		}
		seen[port] = true
	}
	if port, err := p.pick(); err == nil {
		t.Fatalf("a fourth distinct port from three: %d", port)
	}
	real := &portPicker{host: "127.0.0.1"}
	for range 32 {
		port, err := real.pick()
		if err != nil {
			t.Fatal(err)
		}
		if port <= 0 || port > 65535 {
			t.Fatalf("port %d", port)
		}
	}
	if len(real.used) != 32 {
		t.Fatalf("%d distinct ports from 32 picks", len(real.used))
	}
}
