package cell

import (
	"errors"
	"fmt"
)

// An EDGE cell carries an edge message between compute hops of one circuit,
// hop to hop, never through the client's layers (spec §7). Its payload:
//
//	direction  1 byte   0 = forward (away from the client), 1 = backward
//	remaining  1 byte   forward: hops still to travel after the receiving one
//	traveled   1 byte   hops travelled so far, including the current link (>= 1)
//	flags      1 byte   bit 0: MORE
//	data       the rest of the payload: one fragment, already encrypted by the
//	           caller under the edge key
//
// A backward edge cell travels exactly one hop: remaining 0, traveled 1.

// EdgeHeaderLen is the length of the EDGE payload header.
const EdgeHeaderLen = 4

// Direction of an edge message.
type Direction uint8

// Edge directions.
const (
	Forward  Direction = 0
	Backward Direction = 1
)

func (d Direction) String() string {
	if d == Forward {
		return "forward"
	}
	return "backward"
}

// MaxEdgeHops is the farthest an edge message may travel.
const MaxEdgeHops = 16

// Edge is a decoded EDGE payload. Data aliases the input.
type Edge struct {
	Dir       Direction
	Remaining uint8
	Traveled  uint8
	More      bool
	Data      []byte
}

// ErrEdge is wrapped by every EDGE decoding error.
var ErrEdge = errors.New("cell: bad edge payload")

// ParseEdge decodes an EDGE payload.
func ParseEdge(p []byte) (Edge, error) {
	if len(p) < EdgeHeaderLen {
		return Edge{}, fmt.Errorf("%w: %d bytes", ErrEdge, len(p))
	}
	e := Edge{Dir: Direction(p[0]), Remaining: p[1], Traveled: p[2], More: p[3]&flagMore != 0, Data: p[EdgeHeaderLen:]}
	switch {
	case e.Dir > Backward:
		return Edge{}, fmt.Errorf("%w: direction %d", ErrEdge, p[0])
	case e.Traveled == 0 || int(e.Traveled)+int(e.Remaining) > MaxEdgeHops:
		return Edge{}, fmt.Errorf("%w: traveled %d remaining %d", ErrEdge, e.Traveled, e.Remaining)
	case e.Dir == Backward && (e.Remaining != 0 || e.Traveled != 1):
		return Edge{}, fmt.Errorf("%w: backward edge must travel one hop", ErrEdge)
	}
	return e, nil
}

// PutEdge writes the EDGE payload header into p[:EdgeHeaderLen].
func PutEdge(p []byte, e Edge) {
	p[0] = byte(e.Dir)
	p[1] = e.Remaining
	p[2] = e.Traveled
	p[3] = 0
	if e.More {
		p[3] = flagMore
	}
}
