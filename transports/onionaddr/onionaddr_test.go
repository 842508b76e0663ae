package onionaddr

import (
	"crypto/ed25519"
	"strings"
	"testing"
)

// torProject is the Tor Project's published v3 onion address for
// www.torproject.org: a real address made by tor, so a checksum or encoding
// slip here would show.
const torProject = "2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion"

func TestParseKnownAddress(t *testing.T) {
	pub, err := Parse(torProject)
	if err != nil {
		t.Fatal(err)
	}
	if got := FromPublicKey(pub); got != torProject {
		t.Fatalf("round trip: %s", got)
	}
}

func TestRoundTrip(t *testing.T) {
	pub := ed25519.NewKeyFromSeed(make([]byte, 32)).Public().(ed25519.PublicKey)
	host := FromPublicKey(pub)
	if len(host) != HostLen || !strings.HasSuffix(host, ".onion") {
		t.Fatalf("host %q", host)
	}
	got, err := Parse(host)
	if err != nil || !got.Equal(pub) {
		t.Fatalf("Parse(%q) = %x, %v", host, got, err)
	}
}

func TestParseRefuses(t *testing.T) {
	flip := []byte(torProject)
	flip[10] = 'a' + (flip[10]-'a'+1)%26
	for _, h := range []string{
		"",
		"example.com",
		"127.0.0.1",
		"expyuzz4wqqyqhjn.onion", // v2
		strings.ToUpper(torProject[:56]) + ".onion",
		"www." + torProject,
		string(flip),                       // checksum no longer matches
		strings.Repeat("a", 56) + ".onion", // version 0
		torProject[:55] + "1.onion",        // not base32
		torProject[:56] + ".ONION",         // suffix case
	} {
		if _, err := Parse(h); err == nil {
			t.Errorf("Parse(%q) accepted", h)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(torProject)
	f.Add("expyuzz4wqqyqhjn.onion")
	f.Add(strings.Repeat("a", 56) + ".onion")
	f.Add("x.onion")
	f.Fuzz(func(t *testing.T, host string) {
		pub, err := Parse(host)
		if err != nil {
			return
		}
		if FromPublicKey(pub) != host {
			t.Fatalf("accepted %q, which is not the canonical form %q", host, FromPublicKey(pub))
		}
	})
}
