package directory_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/unfed/unfed/directory"
)

func TestDirTunnelCodec(t *testing.T) {
	p, err := directory.ParseDirGet(directory.AppendDirGet(nil, directory.PathConsensus))
	if err != nil || p != directory.PathConsensus {
		t.Fatalf("DIR_GET round trip: %q, %v", p, err)
	}
	for _, bad := range []string{"", "/other", directory.PathConsensus + " x", "/unfed/dir/v1/\x00"} {
		if _, err := directory.ParseDirGet(directory.AppendDirGet(nil, bad)); !errors.Is(err, directory.ErrBadDirMessage) {
			t.Errorf("path %q accepted", bad)
		}
	}
	body := bytes.Repeat([]byte("x"), 2*directory.DirChunk+5)
	chunks := directory.DirChunks(200, body)
	if len(chunks) != 3 {
		t.Fatalf("%d chunks", len(chunks))
	}
	var got []byte
	for i, c := range chunks {
		d, err := directory.ParseDirData(c)
		if err != nil || d.Status != 200 || d.More != (i < 2) {
			t.Fatalf("chunk %d: %+v %v", i, d, err)
		}
		got = append(got, d.Data...)
	}
	if !bytes.Equal(got, body) {
		t.Fatal("body changed")
	}
	if c := directory.DirChunks(503, nil); len(c) != 1 {
		t.Fatalf("empty answer in %d chunks", len(c))
	}
}

// FuzzDirTunnel: DIR_GET and DIR_DATA parsers never panic, and what they
// accept re-encodes to the same bytes.
func FuzzDirTunnel(f *testing.F) {
	f.Add(directory.AppendDirGet(nil, directory.PathConsensus))
	f.Add(directory.DirChunks(200, []byte("consensus"))[0])
	f.Add([]byte{directory.MsgDirGet, 0xff, 0xff})
	f.Add([]byte{directory.MsgDirData, 0, 0, 1})
	f.Fuzz(func(t *testing.T, m []byte) {
		if p, err := directory.ParseDirGet(m); err == nil {
			if !bytes.Equal(directory.AppendDirGet(nil, p), m) {
				t.Fatalf("DIR_GET %q re-encodes differently", m)
			}
		}
		if d, err := directory.ParseDirData(m); err == nil {
			re := d.Append(nil)
			if !bytes.Equal(re[:3], m[:3]) || !bytes.Equal(re[4:], m[4:]) || (m[3]&1 != 0) != d.More {
				t.Fatalf("DIR_DATA %x re-encodes as %x", m, re)
			}
		}
	})
}
