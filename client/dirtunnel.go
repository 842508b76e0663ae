package client

// Directory documents through a bridge (spec/04-directory.md §10.2): with
// bridges configured the client's consensus fetcher never contacts an
// authority or cache. Its HTTP client's transport is dirTunnel, which turns
// each GET into a DIR_GET on a one-hop circuit to the bridge the URL names
// (http://<FINGERPRINT>.bridge.invalid/…) and the bridge's DIR_DATA answers
// back into an HTTP response. Authenticity still comes from the authorities'
// signatures, which the fetcher checks.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/relay/origin"
)

// bridgeHostSuffix ends the host of a bridge directory source.
const bridgeHostSuffix = ".bridge.invalid"

// dirTunnelTimeout bounds one fetch through a bridge.
const dirTunnelTimeout = 2 * time.Minute

// bridgeDirSources are the fetcher's sources with bridges configured: one
// per bridge, in the form dirTunnel understands.
func bridgeDirSources(s *bridgeSet) []string {
	var out []string
	for _, b := range s.lines {
		out = append(out, "http://"+b.Fingerprint.String()+bridgeHostSuffix)
	}
	return out
}

// dirTunnel is the http.RoundTripper of a bridge user's consensus fetcher.
type dirTunnel struct{ bridges *bridgeSet }

func (t dirTunnel) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req.Body.Close()
	}
	if req.Method != http.MethodGet {
		return nil, fmt.Errorf("client: directory tunnel: method %s", req.Method)
	}
	host, ok := strings.CutSuffix(req.URL.Hostname(), bridgeHostSuffix)
	if !ok {
		return nil, fmt.Errorf("client: directory tunnel: %q is not a bridge source", req.URL.Host)
	}
	fp, err := keys.ParseFingerprint(host)
	if err != nil {
		return nil, fmt.Errorf("client: directory tunnel: %w", err)
	}
	for _, b := range t.bridges.lines {
		if b.Fingerprint != fp {
			continue
		}
		ctx, cancel := context.WithTimeout(req.Context(), dirTunnelTimeout)
		defer cancel()
		lc, d, err := t.bridges.dial(ctx, b)
		if err != nil {
			return nil, err
		}
		defer lc.Close()
		c, err := origin.Build(ctx, lc, []origin.HopInfo{{Fingerprint: fp, IdentityKey: d.Identity,
			OnionKey: d.Onion.X25519}}, origin.Options{})
		if err != nil {
			return nil, fmt.Errorf("client: bridge %s: directory circuit: %w", fp, err)
		}
		defer c.Destroy()
		status, body, err := dirFetch(ctx, c, req.URL.Path)
		if err != nil {
			return nil, fmt.Errorf("client: bridge %s: %w", fp, err)
		}
		return &http.Response{Status: strconv.Itoa(status) + " " + http.StatusText(status), StatusCode: status,
			Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: http.Header{},
			Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)), Request: req}, nil
	}
	return nil, fmt.Errorf("client: directory tunnel: no bridge %s configured", fp)
}

// dirFetch asks the circuit's only hop for path and joins its answer, at most
// MaxConsensusSize bytes.
func dirFetch(ctx context.Context, c *origin.Circuit, path string) (int, []byte, error) {
	if err := c.Send(ctx, 0, directory.AppendDirGet(nil, path)); err != nil {
		return 0, nil, fmt.Errorf("directory request: %w", err)
	}
	var body []byte
	status := 0
	for {
		_, m, err := c.Recv(ctx)
		if err != nil {
			return 0, nil, fmt.Errorf("directory answer: %w", err)
		}
		d, err := directory.ParseDirData(m)
		if err != nil {
			return 0, nil, err
		}
		if status != 0 && int(d.Status) != status {
			return 0, nil, fmt.Errorf("%w: status changed from %d to %d", directory.ErrBadDirMessage, status, d.Status)
		}
		status = int(d.Status)
		if len(body)+len(d.Data) > directory.MaxConsensusSize {
			return 0, nil, fmt.Errorf("%w: answer over %d bytes", directory.ErrBadDirMessage, directory.MaxConsensusSize)
		}
		body = append(body, d.Data...)
		if !d.More {
			return status, body, nil
		}
	}
}
