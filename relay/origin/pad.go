package origin

// Shaped sending and cover traffic (02-circuit §4.5). SendShaped sends a
// message as if it were ShapedSize(len) bytes long: the fragment plan
// (classes and count of cells) is that of the rounded size, the message
// fills the first fragments and a PADDING message to the same hop fills the
// rest, so everything a hop between learns is the rounded size. Cover sends a
// PADDING message of a given rounded size and, with echoes, waits for the
// hop's PADDING answers of the echoes' sizes, which that hop cuts as it
// would messages of those sizes.

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
	return c.sendPlanned(ctx, hop, msg, true, ShapedSize(len(msg)))
}

// MaxEchoes is the most answers one PADDING may ask for (02-circuit §4.5).
const MaxEchoes = 8

// Cover sends hop a PADDING message in the cells of a size-byte message
// (rounded as SendShaped does). With echoes, hop answers with one PADDING
// message of each size, in order, and Cover returns once all have arrived.
// Nothing else may be received on the circuit meanwhile.
func (c *Circuit) Cover(ctx context.Context, hop, size int, echoes ...int) error {
	if len(echoes) > MaxEchoes {
		return fmt.Errorf("origin: %d padding echoes, at most %d", len(echoes), MaxEchoes)
	}
	for _, e := range echoes {
		if e < 1 || e > cell.MaxMessage {
			return fmt.Errorf("origin: padding echo of %d bytes", e)
		}
	}
	if err := c.sendPlanned(ctx, hop, nil, false, ShapedSize(size), echoes...); err != nil {
		return err
	}
	for range echoes {
		from, _, pad, err := c.recv(ctx)
		switch {
		case err != nil:
			return err
		case !pad || from != hop:
			return fmt.Errorf("origin: hop %d sent a message while awaiting cover from hop %d", from, hop)
		}
	}
	return nil
}

// echoField encodes the echo request of a PADDING message (02-circuit
// §4.5): nothing asked is 0, one answer its size, several 0x80000000 | n
// followed by the n sizes.
func echoField(echoes []int) []byte {
	b := make([]byte, 4, 4+4*len(echoes))
	switch len(echoes) {
	case 0:
	case 1:
		binary.BigEndian.PutUint32(b, uint32(echoes[0]))
	default:
		binary.BigEndian.PutUint32(b, 1<<31|uint32(len(echoes)))
		for _, e := range echoes {
			b = binary.BigEndian.AppendUint32(b, uint32(e))
		}
	}
	return b
}

// sendPlanned sends msg as a DATA message (when data is set) and then a
// PADDING message carrying echoes, in the fragment plan of a total-byte
// message: DATA fills the first planned cells, PADDING the rest (at least
// one cell when an echo is wanted).
func (c *Circuit) sendPlanned(ctx context.Context, hop int, msg []byte, data bool, total int, echoes ...int) error {
	if len(msg) > cell.MaxMessage || total > cell.MaxMessage {
		return fmt.Errorf("origin: message of %d bytes over %d", max(len(msg), total), cell.MaxMessage)
	}
	h, err := c.hop(hop)
	if err != nil {
		return err
	}
	h.msgMu.Lock()
	defer h.msgMu.Unlock()
	c.Hold() // the message's cells in one write, as Send
	err = c.sendPlannedCells(ctx, h, hop, msg, data, total, echoes)
	if ferr := c.Flush(); err == nil {
		err = ferr
	}
	return err
}

func (c *Circuit) sendPlannedCells(ctx context.Context, h *hop, hop int, msg []byte, data bool, total int, echoes []int) error {
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
		if len(echoes) == 0 {
			return nil
		}
		classes = append(classes, cell.ClassSmall)
	}
	for j := i; j < len(classes); j++ {
		// A PADDING fragment fills its cell: its size is its class's.
		body := make([]byte, cell.Capacity(classes[j])-onion.Overhead*depth-cell.RelayHeaderLen)
		if j == i {
			copy(body, echoField(echoes))
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
