package audit

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// sampleRecords are records of every direction; the messages are opaque to
// the capture layer.
func sampleRecords() []Record {
	return []Record{
		{Dir: FromClient, Msg: []byte{typeSetup, 2, 0, 1, 0, 1, 0, 0, 0, 3}},
		{Dir: FromClient, Msg: []byte{typeTokens, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 7}},
		{Dir: ToEdge, Msg: bytes.Repeat([]byte{edgeActivations}, 300)},
		{Dir: FromEdge, Msg: []byte{edgeMPCPeer, 4, 2, 0, 1}},
		{Dir: ToClient, Msg: []byte{typeLogits}},
	}
}

// timedRecord is a record as relays write it: with the time.
var timedRecord = Record{Dir: FromClient, Msg: []byte{typeTokens, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9}, Time: time.Unix(1, 5)}

func encodeRecords(recs []Record) []byte {
	var b []byte
	for _, r := range recs {
		b = r.Append(b)
	}
	return b
}

func TestCaptureRoundTrip(t *testing.T) {
	recs := append(sampleRecords(), timedRecord)
	b := encodeRecords(recs)
	p := filepath.Join(t.TempDir(), "capture.log")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := ReadCapture(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(recs) {
		t.Fatalf("%d records, want %d", len(got), len(recs))
	}
	var off int64
	for i, r := range got {
		if r.Dir != recs[i].Dir || !bytes.Equal(r.Msg, recs[i].Msg) || r.Offset != off || !r.Time.Equal(recs[i].Time) {
			t.Fatalf("record %d: dir %v offset %d time %v, want %v at %d, %v", i, r.Dir, r.Offset, r.Time, recs[i].Dir, off, recs[i].Time)
		}
		off += recordHeader + int64(len(r.Msg))
		if !r.Time.IsZero() {
			off += timeSize
		}
	}
	// The layout is the one the relay writes: dir, then a big-endian length.
	if b[0] != byte(FromClient) || binary.BigEndian.Uint32(b[1:]) != uint32(len(recs[0].Msg)) {
		t.Fatal("record header is not dir u8 ‖ len u32 big-endian")
	}
	// An empty file holds no records; a missing one is an error.
	empty := filepath.Join(t.TempDir(), "empty.log")
	os.WriteFile(empty, nil, 0o600)
	if got, err := ReadCapture(empty); err != nil || len(got) != 0 {
		t.Fatalf("empty file: %v, %d records", err, len(got))
	}
	if _, err := ReadCapture(filepath.Join(t.TempDir(), "none.log")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

func TestCaptureLimits(t *testing.T) {
	good := encodeRecords(sampleRecords())
	over := []byte{byte(FromEdge), 0, 0, 0, 0}
	binary.BigEndian.PutUint32(over[1:], MaxRecord+1)
	atLimit := []byte{byte(FromEdge), 0, 0, 0, 0}
	binary.BigEndian.PutUint32(atLimit[1:], MaxRecord)
	for name, c := range map[string]struct {
		b    []byte
		want string
		recs int
	}{
		"over the limit":       {append(append([]byte{}, good...), over...), "over the 67108864-byte limit", 5},
		"at the limit, short":  {append(append([]byte{}, good...), append(atLimit, 1, 2, 3)...), "truncated record", 5},
		"truncated header":     {good[:len(good)-len(sampleRecords()[4].Msg)-3], "truncated record header", 4},
		"truncated body":       {good[:len(good)-1], "truncated record at offset", 4},
		"bad direction":        {append(append([]byte{}, good...), 4, 0, 0, 0, 1, 0), "direction 4", 5},
		"empty record":         {append(append([]byte{}, good...), 0, 0, 0, 0, 0), "empty record", 5},
		"header of one byte":   {[]byte{1}, "truncated record header at offset 0", 0},
		"truncated time":       {append(append([]byte{}, good...), timedRecord.Append(nil)[:9]...), "truncated record time", 5},
		"length, then nothing": {[]byte{1, 0, 0, 0, 9}, "truncated record at offset 0: 0 of 9 bytes", 0},
	} {
		recs, err := ParseCapture(bytes.NewReader(c.b))
		if !errors.Is(err, ErrCapture) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an ErrCapture saying %q", name, err, c.want)
		}
		// Only a file that ends inside a record is ErrTruncated (what a
		// reader of a live capture may skip).
		if truncated := strings.Contains(c.want, "truncated"); errors.Is(err, ErrTruncated) != truncated {
			t.Errorf("%s: %v: ErrTruncated is %v, want %v", name, err, errors.Is(err, ErrTruncated), truncated)
		}
		if len(recs) != c.recs {
			t.Errorf("%s: %d records before the error, want %d", name, len(recs), c.recs)
		}
	}
}

// A record header claiming 64 MiB on a short stream must not make the reader
// allocate 64 MiB up front.
func TestCaptureLyingLengthIsCheap(t *testing.T) {
	b := []byte{byte(FromEdge), 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], MaxRecord)
	var ms1, ms2 runtime.MemStats
	runtime.ReadMemStats(&ms1)
	for range 5 {
		if _, err := ParseCapture(bytes.NewReader(append(b, 1))); !errors.Is(err, ErrCapture) {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&ms2)
	if per := (ms2.TotalAlloc - ms1.TotalAlloc) / 5; per > 4<<20 {
		t.Fatalf("a 6-byte stream claiming %d bytes allocated %d bytes", MaxRecord, per)
	}
}

// FuzzParseCapture: ParseCapture never panics; the records it returns are
// exactly a prefix of the input, re-encoded byte for byte with their
// offsets; it fails exactly when that prefix is not the whole input.
func FuzzParseCapture(f *testing.F) {
	f.Add(encodeRecords(append(sampleRecords(), timedRecord)))
	f.Add([]byte{})
	f.Add([]byte{0})
	f.Add([]byte{3, 0, 0, 0, 1, 0x01})
	f.Add([]byte{4, 0, 0, 0, 1, 0x01})
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0})
	f.Add([]byte{2, 0x04, 0, 0, 0, 0})
	f.Add([]byte{0x80, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0x01})
	f.Add([]byte{0x83, 0, 0, 0, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, err := ParseCapture(bytes.NewReader(b))
		var enc []byte
		for _, r := range recs {
			if r.Offset != int64(len(enc)) {
				t.Fatalf("record at offset %d, expected %d", r.Offset, len(enc))
			}
			if r.Dir > ToEdge || len(r.Msg) == 0 || len(r.Msg) > MaxRecord {
				t.Fatalf("accepted record dir %d of %d bytes", r.Dir, len(r.Msg))
			}
			enc = r.Append(enc)
		}
		if !bytes.HasPrefix(b, enc) {
			t.Fatal("records do not re-encode to a prefix of the input")
		}
		if (err == nil) != (len(enc) == len(b)) {
			t.Fatalf("error %v with %d of %d bytes parsed", err, len(enc), len(b))
		}
		if err != nil && !errors.Is(err, ErrCapture) {
			t.Fatalf("error %v does not wrap ErrCapture", err)
		}
	})
}

// ReadCapture reports the file it failed on.
func TestReadCaptureNamesFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "capture.log")
	os.WriteFile(p, []byte{1, 0, 0}, 0o600)
	_, err := ReadCapture(p)
	if err == nil || !strings.Contains(err.Error(), p) || !errors.Is(err, ErrCapture) {
		t.Fatalf("%v", err)
	}
}

// FuzzView: no record, however malformed, makes the extraction panic, and
// every vector it extracts has the model's width.
func FuzzView(f *testing.F) {
	f.Add(byte(FromClient), []byte{typeTokens, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 7})
	f.Add(byte(FromEdge), []byte{edgeActivations, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 1, 1, 0, 0, 0, 0})
	f.Add(byte(ToClient), []byte{typeLogits, 0, 0, 0, 3, 1, 0, 0, 0, 1, 0, 0, 0, 9, 0, 0, 0, 0})
	f.Add(byte(FromEdge), []byte{edgeMPCPeer, 4, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8})
	share := append([]byte{typeMPCInput, 1, 4, 5, 0, 16}, make([]byte, 14)...)
	share = append(share, 0, 0, 0, 2)
	share = append(share, make([]byte, 16)...)
	f.Add(byte(FromClient), share)
	f.Add(byte(FromClient), []byte{typeSetup, 2, 3, 3, 0, 0, 0, 2, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 'm', 0})
	f.Fuzz(func(t *testing.T, dir byte, msg []byte) {
		v := newView(2, 16)
		r := Record{Dir: Dir(dir % 4), Msg: msg}
		v.add(r)
		v.add(r)
		v.finish()
		for _, w := range v.windows {
			if len(w.row) != 2 {
				t.Fatalf("window of %d values", len(w.row))
			}
		}
		for _, row := range v.acts {
			if len(row) != 2 {
				t.Fatalf("row of %d values", len(row))
			}
		}
		if len(msg) > 0 && msg[0] == typeSetup {
			parseSetup(msg)
		}
		roles([]Capture{{Relay: "x", Records: []Record{r}}})
	})
}
