package relay

import (
	"context"

	"github.com/unfed/unfed/directory"
)

// ProbeCounted is p.Probe, also returning the bytes its transport sent and
// received, handshakes included (BenchmarkLinkProberMeasure).
func ProbeCounted(ctx context.Context, p *LinkProber, d *directory.Descriptor) (sent, received int64, err error) {
	var n byteCount
	err = p.probe(ctx, d, &n)
	return n.sent.Load(), n.received.Load(), err
}

// SetPlainBridgeListeners turns on the mutation of
// TestBridgeNotDisclosedOnProbe: bridges on plain listeners, descriptor to
// any dialer. It returns the function that turns it off.
func SetPlainBridgeListeners() (restore func()) {
	plainBridgeListeners = true
	return func() { plainBridgeListeners = false }
}

// RoundTimeout bounds one probe round on a link whose handshake took rtt.
var RoundTimeout = roundTimeout
