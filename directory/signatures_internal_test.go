package directory

import (
	"bytes"
	"testing"
	"time"

	"github.com/unfed/unfed/relay/keys"
)

func testSigner(t testing.TB) *Signer {
	id, err := keys.IdentityFromSeed(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return &Signer{Identity: id}
}

func TestDetachedSigsRoundTrip(t *testing.T) {
	s := testSigner(t)
	d := &detachedSigs{validAfter: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), digest: [32]byte{1, 2, 3}}
	var err error
	if d.sigs, err = s.sign(consensusSigContext, d.digest, false); err != nil {
		t.Fatal(err)
	}
	b, err := d.encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseDetachedSigs(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.digest != d.digest || !got.validAfter.Equal(d.validAfter) || len(got.sigs) != 1 || !bytes.Equal(got.sigs[0].Sig, d.sigs[0].Sig) {
		t.Fatalf("round trip: %+v", got)
	}
	for _, bad := range [][]byte{
		bytes.Replace(b, []byte("consensus-digest 01"), []byte("consensus-digest 0A"), 1), // upper-case hex
		bytes.Replace(b, []byte("unfed-consensus-signatures 1"), []byte("unfed-consensus-signatures 2"), 1),
		b[:bytes.Index(b, []byte("directory-signature"))],
	} {
		if _, err := parseDetachedSigs(bad); err == nil {
			t.Errorf("accepted:\n%s", bad)
		}
	}
}

func FuzzParseDetachedSigs(f *testing.F) {
	s := testSigner(f)
	d := &detachedSigs{validAfter: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), digest: [32]byte{9}}
	d.sigs, _ = s.sign(consensusSigContext, d.digest, false)
	b, _ := d.encode()
	f.Add(b)
	f.Add([]byte("unfed-consensus-signatures 1\nvalid-after 2026-01-01 00:00:00\nconsensus-digest 00\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := parseDetachedSigs(b)
		if err != nil {
			return
		}
		if _, err := d.encode(); err != nil {
			t.Fatalf("parsed signatures do not re-encode: %v", err)
		}
	})
}

func TestReachHistory(t *testing.T) {
	var h reach
	t1 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	h.record(t1, nil)
	h.record(t1.Add(time.Hour), nil)
	if !h.running() || h.uptime(t1.Add(2*time.Hour)) != 2*time.Hour {
		t.Fatalf("uptime %s", h.uptime(t1.Add(2*time.Hour)))
	}
	h.record(t1.Add(3*time.Hour), errTest)
	if h.running() || h.uptime(t1.Add(4*time.Hour)) != 0 {
		t.Fatal("still running after a failed probe")
	}
	h.record(t1.Add(5*time.Hour), nil)
	if h.uptime(t1.Add(6*time.Hour)) != time.Hour {
		t.Fatalf("uptime after recovery %s, want 1h", h.uptime(t1.Add(6*time.Hour)))
	}
}

var errTest = bytes.ErrTooLarge
