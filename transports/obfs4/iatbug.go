package obfs4

// Working around the library's iat-mode 2 crash.
//
// In paranoid IAT mode (iat-mode=2) the obfs4 library (and lyrebird after it)
// samples the length of every write from the connection's length table and
// panics with "BUG: Write(), iat length was 0" when the table holds 0 and 0
// is drawn. About 3 % of random tables hold 0. A process that let that panic
// through would die on a random write, so:
//
//   - our server picks a length table without 0: if the drbg-seed in its
//     state file gives one with 0, it uses a seed derived from it
//     deterministically (safeLengthSeed) instead, the same on every start;
//     the state file itself is left as it is;
//   - our client in iat-mode 2 takes the bridge's table (the PRNG seed frame
//     that follows the server handshake) before its first write; the
//     library only applies it inside a Read (waitForSeed);
//   - a panic in the library's Write is turned into ErrLibraryPanic and the
//     connection is closed (its framing state is lost), for a third-party
//     bridge whose own table holds 0.

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand"
	"net"
	"slices"
	"time"

	"gitlab.com/yawning/obfs4.git/common/drbg"
	"gitlab.com/yawning/obfs4.git/transports/obfs4/framing"
)

// ErrLibraryPanic reports a panic inside the obfs4 library's Write; the
// connection has been closed.
var ErrLibraryPanic = errors.New("obfs4: library panic on write (connection closed)")

// lengthTableHasZero reports whether the length table the library builds
// from seed (probdist.New(seed, 0, MaximumSegmentLength, false), obfs4's
// default unbiased tables) can yield 0. It repeats the library's value
// selection, which draws from a HashDrbg seeded with seed through
// math/rand: a permutation of [0, max], then how many of its first entries
// to keep (at least 1, at most 100). Every kept value has a positive weight.
func lengthTableHasZero(seed *drbg.Seed) bool {
	d, err := drbg.NewHashDrbg(seed)
	if err != nil {
		return false
	}
	rng := rand.New(d) //nolint:gosec // the library's own deterministic draw
	n := framing.MaximumSegmentLength + 1
	values := rng.Perm(n)
	keep := min(max(n, 1), 100)
	keep = rng.Intn(keep) + 1
	return slices.Contains(values[:keep], 0)
}

// safeLengthSeed returns seed if its length table cannot yield 0, else the
// first of SHA-256(seed ‖ "unfed/obfs4/length-seed" ‖ i), i = 1, 2, …, that
// gives such a table.
func safeLengthSeed(seed *drbg.Seed) (*drbg.Seed, error) {
	s := seed
	for i := 1; lengthTableHasZero(s); i++ {
		h := sha256.New()
		h.Write(seed.Bytes()[:])
		fmt.Fprintf(h, "unfed/obfs4/length-seed%d", i)
		var err error
		if s, err = drbg.SeedFromBytes(h.Sum(nil)); err != nil {
			return nil, fmt.Errorf("obfs4: %w", err)
		}
	}
	return s, nil
}

// seedWait bounds how long a paranoid-mode client waits for the bridge's
// PRNG seed frame after the handshake. The bridge sends it in the same write
// as its handshake reply, so it is normally there already.
const seedWait = 50 * time.Millisecond

// waitForSeed makes the library read what the bridge sent after its
// handshake reply, so the bridge's PRNG seed frame is applied before the
// first write. A payload byte read meanwhile is kept for the next Read.
func (c *conn) waitForSeed() error {
	if err := c.raw.SetReadDeadline(time.Now().Add(seedWait)); err != nil {
		return err
	}
	var b [1]byte
	n, err := c.Conn.Read(b[:])
	if n > 0 {
		c.pending = append(c.pending, b[:n]...)
	}
	if err := c.raw.SetReadDeadline(time.Time{}); err != nil {
		return err
	}
	var ne net.Error
	if err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
		return err
	}
	return nil
}

// safeWrite calls the library's Write and turns a panic in it into
// ErrLibraryPanic, closing the connection.
func (c *conn) safeWrite(b []byte) (n int, err error) {
	defer func() {
		if r := recover(); r != nil {
			c.raw.Close()
			n, err = 0, fmt.Errorf("%w: %v", ErrLibraryPanic, r)
		}
	}()
	return c.Conn.Write(b)
}
