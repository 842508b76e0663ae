package directory

// Directory documents over a one-hop circuit to a bridge (spec/04-directory.md
// §10.2), as Tor's bridge users fetch theirs with BEGIN_DIR: the client sends
// DIR_GET with an HTTP path as a relay DATA message to the bridge, and the
// bridge answers with DIR_DATA messages carrying an HTTP status and the body
// in chunks. These are pure codecs; relay/ serves them and client/ sends them.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Message types, in the compute protocol's type space (spec/03-compute.md §3.1).
const (
	MsgDirGet  = 0x20 // client → bridge
	MsgDirData = 0xa0 // bridge → client
)

// Tunnel limits.
const (
	// MaxDirPath bounds a DIR_GET's path.
	MaxDirPath = 1024
	// DirChunk is the most body bytes one DIR_DATA carries.
	DirChunk = 512 << 10
	// PathPrefix starts every path a DIR_GET may ask for.
	PathPrefix = "/unfed/dir/v1/"
)

// ErrBadDirMessage is returned for a DIR_GET or DIR_DATA that does not parse.
var ErrBadDirMessage = errors.New("directory: bad directory tunnel message")

// AppendDirGet appends a DIR_GET for path.
func AppendDirGet(b []byte, path string) []byte {
	b = append(b, MsgDirGet)
	b = binary.BigEndian.AppendUint16(b, uint16(len(path)))
	return append(b, path...)
}

// ParseDirGet returns the path of a DIR_GET: at most MaxDirPath bytes of
// printable ASCII starting with PathPrefix.
func ParseDirGet(m []byte) (string, error) {
	if len(m) < 3 || m[0] != MsgDirGet {
		return "", fmt.Errorf("%w: not a DIR_GET", ErrBadDirMessage)
	}
	n := int(binary.BigEndian.Uint16(m[1:3]))
	if n > MaxDirPath || len(m) != 3+n {
		return "", fmt.Errorf("%w: path of %d bytes in a %d-byte message", ErrBadDirMessage, n, len(m))
	}
	p := string(m[3:])
	for i := 0; i < len(p); i++ {
		if p[i] <= 0x20 || p[i] > 0x7e {
			return "", fmt.Errorf("%w: path byte %#x", ErrBadDirMessage, p[i])
		}
	}
	if !strings.HasPrefix(p, PathPrefix) {
		return "", fmt.Errorf("%w: path outside %s", ErrBadDirMessage, PathPrefix)
	}
	return p, nil
}

// DirData is one DIR_DATA message.
type DirData struct {
	Status uint16 // HTTP status of the answer, the same in every chunk
	More   bool   // another chunk follows
	Data   []byte // at most DirChunk bytes
}

// Append appends the message.
func (d DirData) Append(b []byte) []byte {
	b = append(b, MsgDirData)
	b = binary.BigEndian.AppendUint16(b, d.Status)
	var flags byte
	if d.More {
		flags = 1
	}
	b = append(b, flags)
	return append(b, d.Data...)
}

// ParseDirData parses a DIR_DATA message; Data aliases m.
func ParseDirData(m []byte) (DirData, error) {
	if len(m) < 4 || m[0] != MsgDirData {
		return DirData{}, fmt.Errorf("%w: not a DIR_DATA", ErrBadDirMessage)
	}
	d := DirData{Status: binary.BigEndian.Uint16(m[1:3]), More: m[3]&1 != 0, Data: m[4:]}
	if d.Status < 100 || d.Status > 599 {
		return DirData{}, fmt.Errorf("%w: status %d", ErrBadDirMessage, d.Status)
	}
	if len(d.Data) > DirChunk {
		return DirData{}, fmt.Errorf("%w: chunk of %d bytes", ErrBadDirMessage, len(d.Data))
	}
	return d, nil
}

// DirChunks cuts an answer into DIR_DATA messages: at least one, the last
// without More.
func DirChunks(status uint16, body []byte) [][]byte {
	var out [][]byte
	for {
		n := min(len(body), DirChunk)
		out = append(out, DirData{Status: status, More: n < len(body), Data: body[:n]}.Append(nil))
		body = body[n:]
		if len(body) == 0 {
			return out
		}
	}
}
