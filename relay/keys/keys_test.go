package keys

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFingerprintVectors(t *testing.T) {
	f, err := os.Open("../../spec/vectors/keys/fingerprint.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 4 || fields[0] != "fingerprint" {
			t.Fatalf("bad vector line %q", line)
		}
		seed, _ := hex.DecodeString(fields[1])
		id, err := IdentityFromSeed(seed)
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(id.Public); got != fields[2] {
			t.Errorf("public key of seed %s = %s, want %s", fields[1], got, fields[2])
		}
		if got := id.Fingerprint().String(); got != fields[3] {
			t.Errorf("fingerprint of seed %s = %s, want %s", fields[1], got, fields[3])
		}
		fp, err := ParseFingerprint("$" + strings.ToLower(fields[3]))
		if err != nil || fp != id.Fingerprint() {
			t.Errorf("ParseFingerprint(%s) = %v, %v", fields[3], fp, err)
		}
		n++
	}
	if n < 3 {
		t.Fatalf("read %d vectors, want at least 3", n)
	}
}

func TestParseFingerprintErrors(t *testing.T) {
	for _, s := range []string{"", "ABC", strings.Repeat("G", 40), strings.Repeat("A", 41)} {
		if _, err := ParseFingerprint(s); err == nil {
			t.Errorf("ParseFingerprint(%q) succeeded", s)
		}
	}
}

func TestStoreCreateThenLoad(t *testing.T) {
	dir := t.TempDir()
	s1, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{identityFile, onionFile, linkFile} {
		st, err := os.Stat(filepath.Join(dir, KeysDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %o, want 600", name, st.Mode().Perm())
		}
	}
	s2, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s1.Identity().Fingerprint() != s2.Identity().Fingerprint() {
		t.Error("identity changed across reopen")
	}
	if s1.Link().Public != s2.Link().Public {
		t.Error("link key changed across reopen")
	}
	c1, _ := s1.OnionKeys()
	c2, _ := s2.OnionKeys()
	if c1.Public != c2.Public || !bytes.Equal(c1.XWingPublic, c2.XWingPublic) || !c1.Created.Equal(c2.Created) {
		t.Error("onion key changed across reopen")
	}
}

func TestStoreRejectsWrongMode(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, KeysDir, identityFile)
	before, _ := os.ReadFile(path)
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir, Options{})
	if !errors.Is(err, ErrKeyFileMode) {
		t.Fatalf("Open with mode 0644 key: err = %v, want ErrKeyFileMode", err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Error("key file was changed after a mode error")
	}
}

func TestStoreRejectsCorruptKey(t *testing.T) {
	for name, content := range map[string]string{
		"garbage":    "not a key\n",
		"wrong type": "-----BEGIN UNFED NOISE LINK KEY-----\nAAAA\n-----END UNFED NOISE LINK KEY-----\n",
		"short":      "-----BEGIN UNFED ED25519 IDENTITY KEY-----\nAAAA\n-----END UNFED ED25519 IDENTITY KEY-----\n",
		"trailing": "-----BEGIN UNFED ED25519 IDENTITY KEY-----\n" +
			"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n-----END UNFED ED25519 IDENTITY KEY-----\nextra\n",
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			kd := filepath.Join(dir, KeysDir)
			os.MkdirAll(kd, 0o700)
			path := filepath.Join(kd, identityFile)
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Open(dir, Options{})
			if err == nil || !strings.Contains(err.Error(), identityFile) {
				t.Fatalf("Open with %s identity: err = %v, want an error naming the file", name, err)
			}
			got, _ := os.ReadFile(path)
			if string(got) != content {
				t.Error("corrupt key file was replaced")
			}
		})
	}
}

func TestOnionRotation(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	dir := t.TempDir()
	opts := Options{OnionLifetime: time.Hour, OnionGrace: 10 * time.Minute, Now: clock}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	first, prev := s.OnionKeys()
	if prev != nil {
		t.Fatal("fresh store has a previous onion key")
	}
	if rotated, err := s.RotateOnionIfDue(); err != nil || rotated {
		t.Fatalf("early rotation: %v %v", rotated, err)
	}
	now = now.Add(time.Hour)
	if rotated, err := s.RotateOnionIfDue(); err != nil || !rotated {
		t.Fatalf("due rotation: %v %v", rotated, err)
	}
	cur, prev := s.OnionKeys()
	if cur.Public == first.Public || prev == nil || prev.Public != first.Public {
		t.Fatal("rotation did not keep the previous key")
	}
	// A restart inside the grace period still knows the previous key.
	s2, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	cur2, prev2 := s2.OnionKeys()
	if cur2.Public != cur.Public || prev2 == nil || prev2.Public != first.Public {
		t.Fatal("reopened store lost the rotated keys")
	}
	now = now.Add(11 * time.Minute)
	if _, prev := s2.OnionKeys(); prev != nil {
		t.Fatal("previous onion key still offered after its grace period")
	}
}

func TestLinkCert(t *testing.T) {
	id, _ := NewIdentity(nil)
	lk, _ := NewLinkKey(nil)
	now := time.Now()
	raw := CertifyLink(id, lk.Public, now.Add(time.Hour))
	c, err := ParseLinkCert(raw, now)
	if err != nil {
		t.Fatal(err)
	}
	if c.Fingerprint() != id.Fingerprint() || c.LinkKey != lk.Public {
		t.Fatal("certificate fields do not round-trip")
	}
	if _, err := ParseLinkCert(raw, now.Add(2*time.Hour)); !errors.Is(err, ErrBadCert) {
		t.Errorf("expired cert accepted: %v", err)
	}
	for i := range raw {
		bad := append([]byte(nil), raw...)
		bad[i] ^= 1
		if _, err := ParseLinkCert(bad, now); err == nil {
			t.Fatalf("cert with byte %d flipped accepted", i)
		}
	}
}

func FuzzParseLinkCert(f *testing.F) {
	id, _ := IdentityFromSeed(make([]byte, 32))
	f.Add(CertifyLink(id, [32]byte{1}, time.Unix(2e9, 0)))
	f.Add([]byte{})
	f.Add(make([]byte, LinkCertLen))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseLinkCert(b, time.Unix(1e9, 0))
		if err == nil && !bytes.Equal(c.Bytes(), b) {
			t.Fatal("accepted cert does not re-encode to its input")
		}
	})
}

func FuzzDecodeKey(f *testing.F) {
	f.Add([]byte("-----BEGIN UNFED ONION KEY-----\nCreated: 2026-01-01T00:00:00Z\n\nAAAA\n-----END UNFED ONION KEY-----\n"))
	f.Add([]byte("garbage"))
	f.Add([]byte("-----BEGIN UNFED ONION KEY-----\nCheck: 0011223344556677\nCreated: 2026-01-01T00:00:00Z\n\nAAAA\n-----END UNFED ONION KEY-----\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		sec, _, err := decodeKey("fuzz", pemOnion, b)
		if err == nil {
			OnionKeyFromSecret(sec, time.Time{})
		}
	})
}

// flipKeyBit flips one bit of the secret inside a PEM key file, keeping its
// headers and PEM framing intact (what a damaged disk sector does).
func flipKeyBit(t *testing.T, path string, bit int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatal("no PEM block")
	}
	block.Bytes[bit/8] ^= 1 << (bit % 8)
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestCorruptIdentityKeyRefused: a bit flipped inside the identity key is
// detected by the file's check value (the fingerprint file is removed, so
// the check value alone must catch it); Open and keygen refuse it and
// leave the file alone rather than loading it as a different identity.
func TestCorruptIdentityKeyRefused(t *testing.T) {
	for _, bit := range []int{0, 77, 255} {
		dir := t.TempDir()
		if _, err := Open(dir, Options{}); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, KeysDir, identityFile)
		os.Remove(filepath.Join(dir, FingerprintFile))
		flipKeyBit(t, path, bit)
		damaged, _ := os.ReadFile(path)
		_, err := Open(dir, Options{})
		if !errors.Is(err, ErrKeyCorrupt) || !strings.Contains(err.Error(), identityFile) {
			t.Fatalf("bit %d: Open of a damaged identity key: err = %v, want ErrKeyCorrupt naming the file", bit, err)
		}
		var out, errOut bytes.Buffer
		if err := KeygenCommand(context.Background(), []string{"--data-dir", dir}, &out, &errOut); !errors.Is(err, ErrKeyCorrupt) {
			t.Fatalf("bit %d: keygen on a damaged identity key: err = %v, output %q, want ErrKeyCorrupt", bit, err, out.String())
		}
		if after, _ := os.ReadFile(path); !bytes.Equal(after, damaged) {
			t.Fatalf("bit %d: the damaged key file was rewritten", bit)
		}
	}
}

// TestDeletedIdentityKeyNotReplaced: once a data directory has held an
// identity, a missing identity key is an error, never a fresh identity; a
// key swapped for another identity is refused too.
func TestDeletedIdentityKeyNotReplaced(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, KeysDir, identityFile)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrIdentityLost) || !strings.Contains(err.Error(), s.Identity().Fingerprint().String()) {
		t.Fatalf("Open after deleting the identity key: err = %v, want ErrIdentityLost naming %s", err, s.Identity().Fingerprint())
	}
	var out, errOut bytes.Buffer
	if err := KeygenCommand(context.Background(), []string{"--data-dir", dir}, &out, &errOut); !errors.Is(err, ErrIdentityLost) {
		t.Fatalf("keygen after deleting the identity key: err = %v, output %q", err, out.String())
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("a new identity key was written in place of the lost one")
	}
	// Another identity's key in its place is refused as well.
	other := t.TempDir()
	if _, err := Open(other, Options{}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(other, KeysDir, identityFile))
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrIdentityLost) {
		t.Fatalf("Open with another identity's key: err = %v, want ErrIdentityLost", err)
	}
	// Removing the fingerprint file is how an operator starts over.
	if err := os.Remove(filepath.Join(dir, FingerprintFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{}); err != nil {
		t.Fatalf("Open after removing the fingerprint file: %v", err)
	}
}

// TestLooseDataDirRefused: a data or keys directory that group or others
// can write is refused; one they can only read is tightened to 0700 (spec
// README §5.5).
func TestLooseDataDirRefused(t *testing.T) {
	for _, sub := range []string{"", KeysDir} {
		dir := t.TempDir()
		if _, err := Open(dir, Options{}); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, sub)
		for _, mode := range []os.FileMode{0o775, 0o757, 0o722} {
			if err := os.Chmod(p, mode); err != nil {
				t.Fatal(err)
			}
			if _, err := Open(dir, Options{}); !errors.Is(err, ErrDirMode) {
				t.Fatalf("Open with %q mode %04o: err = %v, want ErrDirMode", sub, mode, err)
			}
		}
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(dir, Options{}); err != nil {
			t.Fatalf("Open with %q mode 0755: %v", sub, err)
		}
		if st, _ := os.Stat(p); st.Mode().Perm() != 0o700 {
			t.Fatalf("%q mode %04o after Open, want 0700", sub, st.Mode().Perm())
		}
	}
}

func FuzzFingerprintFile(f *testing.F) {
	f.Add([]byte("CF5B4178E5E3AA81A01C50A5834E9CDFE7E4F088\n"))
	f.Add([]byte(" $cf5b4178e5e3aa81a01c50a5834e9cdfe7e4f088 \r\n"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, b []byte) {
		fp, err := parseFingerprintFile(b)
		if err == nil {
			if again, err := parseFingerprintFile([]byte(fp.String() + "\n")); err != nil || again != fp {
				t.Fatalf("%s does not round-trip: %v", fp, err)
			}
		}
	})
}
