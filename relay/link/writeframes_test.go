package link

import (
	"bytes"
	"errors"
	"testing"

	"github.com/flynn/noise"
)

// countingWriter records each write it is given.
type countingWriter struct {
	*readerConn
	buf    bytes.Buffer
	writes int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.writes++
	return c.buf.Write(p)
}

// TestWriteFramesSameBytes: frames sent with one WriteFrames are the bytes
// WriteFrame sends for each in turn (rekeys included), in fewer writes,
// each at most maxCoalesced plus one frame, and the peer reads them back.
func TestWriteFramesSameBytes(t *testing.T) {
	var key [32]byte
	key[0] = 7
	opts := connOptions{rekeyMessages: 5, rekeyBytes: DefaultRekeyBytes}
	mk := func() (*Conn, *countingWriter) {
		w := &countingWriter{readerConn: &readerConn{Reader: bytes.NewReader(nil)}}
		return newConn(w, noise.UnsafeNewCipherState(cipherSuite, key, 0), noise.UnsafeNewCipherState(cipherSuite, key, 0), opts, nil, nil), w
	}
	var frames [][]byte
	for i := 0; i < 40; i++ {
		size := []int{0, 1, 509, 20 << 10, MaxPayload}[i%5]
		frames = append(frames, bytes.Repeat([]byte{byte(i)}, size))
	}
	one, oneOut := mk()
	for _, f := range frames {
		if err := one.WriteFrame(f); err != nil {
			t.Fatal(err)
		}
	}
	many, manyOut := mk()
	if err := many.WriteFrames(frames); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(oneOut.buf.Bytes(), manyOut.buf.Bytes()) {
		t.Fatalf("WriteFrames sent %d bytes unlike WriteFrame's %d", manyOut.buf.Len(), oneOut.buf.Len())
	}
	if manyOut.writes >= oneOut.writes || manyOut.writes < oneOut.buf.Len()/(maxCoalesced+MaxWireFrame+2) {
		t.Fatalf("%d writes for %d frames (WriteFrame: %d)", manyOut.writes, len(frames), oneOut.writes)
	}

	r := newConn(&readerConn{Reader: bytes.NewReader(manyOut.buf.Bytes())}, noise.UnsafeNewCipherState(cipherSuite, key, 0),
		noise.UnsafeNewCipherState(cipherSuite, key, 0), opts, nil, nil)
	for i, f := range frames {
		got, err := r.ReadFrame()
		if err != nil || !bytes.Equal(got, f) {
			t.Fatalf("frame %d: %d bytes, %v; want %d bytes", i, len(got), err, len(f))
		}
	}

	// One frame too large: nothing is sent.
	bad, badOut := mk()
	err := bad.WriteFrames([][]byte{{1}, make([]byte, MaxPayload+1)})
	if !errors.Is(err, ErrFrameTooLarge) || badOut.buf.Len() != 0 {
		t.Fatalf("a batch with a frame too large: %v, %d bytes sent", err, badOut.buf.Len())
	}
}
