package obs

import (
	"fmt"
	"io"
	"sync"
)

var announceMu sync.Mutex

// AnnounceListener prints the one stable, machine-readable line that tells a
// harness where a daemon listens:
//
//	listening kind=<kind> addr=<host:port>
//
// kind is one of or, dir, metrics, api, socks (and more as programs grow).
// Harnesses parse these lines; their shape never changes.
func AnnounceListener(w io.Writer, kind, addr string) {
	announceMu.Lock()
	defer announceMu.Unlock()
	fmt.Fprintf(w, "listening kind=%s addr=%s\n", kind, addr)
}
