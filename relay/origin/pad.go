package origin

// Shaped sending and cover traffic (02-circuit §4.5). SendShaped sends a
// message as if it were ShapedSize(len) bytes long: the fragment plan
// (classes and count of cells) is that of the rounded size, the message
// fills the first fragments and a PADDING message to the same hop fills the
// rest, so everything a hop between learns is the rounded size. Cover sends a
// PADDING message of a given rounded size and, with an echo, waits for the
// hop's PADDING answer of the echo's size, which that hop cuts as it would a
// message of that size.

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/bits"

	"github.com/unfed/unfed/relay/cell"
	"github.com/unfed/unfed/relay/onion"
)

// MinShapedSize is the smallest size SendShaped rounds to.
const MinShapedSize = 256

// ShapedSize is the size a message of n bytes is sent as: the next power of
// two, at least MinShapedSize; a message over half of cell.MaxMessage is
// sent as it is (its PADDING would not fit the message limit).
func ShapedSize(n int) int {
	switch {
	case n <= MinShapedSize:
		return MinShapedSize
	case n > cell.MaxMessage/2:
		return n
	}
	return 1 << bits.Len(uint(n-1))
}

// plan returns the data capacity of each fragment a message of n bytes is
// cut into for a hop at depth, with its class.
func plan(n, depth int) (classes, takes []int) {
	for first := true; first || n > 0; first = false {
		class, take := onion.Fragment(n, depth)
		classes, takes = append(classes, class), append(takes, take)
		n -= take
	}
	return classes, takes
}

// SendShaped sends msg to hop like Send, in the cells of a message of
// ShapedSize(len(msg)) bytes; the cells msg does not fill carry a PADDING
// message, which hop drops.
func (c *Circuit) SendShaped(ctx context.Context, hop int, msg []byte) error {
	return c.sendPlanned(ctx, hop, msg, true, ShapedSize(len(msg)), 0)
}

// Cover sends hop a PADDING message in the cells of a size-byte message
// (rounded as SendShaped does). With echo > 0 hop answers with a PADDING
// message of echo bytes, and Cover returns once it has arrived. Nothing else
// may be received on the circuit meanwhile.
func (c *Circuit) Cover(ctx context.Context, hop, size, echo int) error {
	if echo < 0 || echo > cell.MaxMessage {
		return fmt.Errorf("origin: padding echo of %d bytes", echo)
	}
	if err := c.sendPlanned(ctx, hop, nil, false, ShapedSize(size), echo); err != nil {
		return err
	}
	if echo == 0 {
		return nil
	}
	from, _, pad, err := c.recv(ctx)
	switch {
	case err != nil:
		return err
	case !pad || from != hop:
		return fmt.Errorf("origin: hop %d sent a message while awaiting cover from hop %d", from, hop)
	}
	return nil
}

// sendPlanned sends msg as a DATA message (when data is set) and then a
// PADDING message carrying echo, in the fragment plan of a total-byte
// message: DATA fills the first planned cells, PADDING the rest (at least
// one cell when an echo is wanted).
func (c *Circuit) sendPlanned(ctx context.Context, hop int, msg []byte, data bool, total, echo int) error {
	if len(msg) > cell.MaxMessage || total > cell.MaxMessage {
		return fmt.Errorf("origin: message of %d bytes over %d", max(len(msg), total), cell.MaxMessage)
	}
	h, err := c.hop(hop)
	if err != nil {
		return err
	}
	h.msgMu.Lock()
	defer h.msgMu.Unlock()
	depth := hop + 1
	classes, takes := plan(max(total, len(msg)), depth)
	i := 0
	for first := data; first || len(msg) > 0; first = false {
		n := min(len(msg), takes[i])
		if err := c.takeCredit(ctx, h, classes[i]); err != nil {
			return err
		}
		if err := c.sendFragmentClass(hop, classes[i], cell.KindData, n < len(msg), msg[:n]); err != nil {
			return err
		}
		msg, i = msg[n:], i+1
	}
	if i >= len(classes) {
		if echo == 0 {
			return nil
		}
		classes = append(classes, cell.ClassSmall)
	}
	for j := i; j < len(classes); j++ {
		// A PADDING fragment fills its cell: its size is its class's.
		body := make([]byte, cell.Capacity(classes[j])-onion.Overhead*depth-cell.RelayHeaderLen)
		if j == i {
			binary.BigEndian.PutUint32(body, uint32(echo))
		}
		if err := c.takeCredit(ctx, h, classes[j]); err != nil {
			return err
		}
		if err := c.sendFragmentClass(hop, classes[j], cell.KindPadding, j < len(classes)-1, body); err != nil {
			return err
		}
	}
	return nil
}
