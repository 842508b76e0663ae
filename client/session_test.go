package client

import "testing"

// TestPrefillRows: prompts under 64 positions cross in one message; longer
// ones in up to four chunks of at least 32 positions, every position sent.
func TestPrefillRows(t *testing.T) {
	for _, c := range []struct{ n, rows, chunks int }{
		{1, 1, 1}, {63, 63, 1}, {64, 32, 2}, {100, 32, 4}, {128, 32, 4}, {129, 33, 4}, {1017, 255, 4}, {4096, 1024, 4},
	} {
		rows := prefillRows(c.n)
		if chunks := (c.n + rows - 1) / rows; rows != c.rows || chunks != c.chunks {
			t.Errorf("prefillRows(%d) = %d (%d chunks), want %d (%d)", c.n, rows, chunks, c.rows, c.chunks)
		}
	}
}
