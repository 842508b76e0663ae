package onion

import (
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/unfed/unfed/transports/onionaddr"
)

func TestStartWithoutTorIsAClearError(t *testing.T) {
	_, err := Start(context.Background(), Config{Enabled: true, TorPath: filepath.Join(t.TempDir(), "no-such-tor")}, t.TempDir(), nil)
	if !errors.Is(err, ErrNoTor) || !strings.Contains(err.Error(), "apt-get install tor") {
		t.Fatalf("err = %v, want ErrNoTor naming the fix", err)
	}
}

// TestStartWithoutBootstrapIsAClearError points a real tor at a Tor network
// whose only authority does not exist: tor starts, never bootstraps, and
// Start gives up at the deadline naming the phase where tor stuck.
func TestStartWithoutBootstrapIsAClearError(t *testing.T) {
	if _, err := FindTor(""); err != nil {
		t.Fatalf("tor is not installed (make deps installs it): %v", err)
	}
	dir := t.TempDir()
	torrc := filepath.Join(dir, "torrc")
	// An authority on a closed port: nothing will answer.
	lines := "TestingTorNetwork 1\nDirAuthority nowhere orport=1 no-v2 v3ident=" + strings.Repeat("AB", 20) +
		" 127.0.0.1:1 " + strings.Repeat("CD", 20) + "\n"
	if err := os.WriteFile(torrc, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := Start(context.Background(), Config{Enabled: true, Torrc: torrc, BootstrapTimeout: 4 * time.Second}, filepath.Join(dir, "tor"), nil)
	if !errors.Is(err, ErrBootstrap) || !strings.Contains(err.Error(), "stuck at") {
		t.Fatalf("err = %v, want ErrBootstrap naming the phase", err)
	}
	if time.Since(start) > time.Minute {
		t.Fatalf("Start took %v after a 4s bootstrap deadline", time.Since(start))
	}
}

func TestParsePhase(t *testing.T) {
	p := parsePhase(`NOTICE BOOTSTRAP PROGRESS=14 TAG=handshake SUMMARY="Handshaking with a relay"`)
	if p.severity != "NOTICE" || p.progress != 14 || p.tag != "handshake" || p.summary != "Handshaking with a relay" {
		t.Fatalf("%+v", p)
	}
	p = parsePhase(`WARN BOOTSTRAP PROGRESS=5 TAG=conn SUMMARY="Connecting to a relay" WARNING="Connection refused" REASON=CONNECTREFUSED COUNT=1 RECOMMENDATION=ignore HOSTID="CDCD" HOSTADDR="127.0.0.1:1"`)
	if p.progress != 5 || p.tag != "conn" || p.summary != "Connecting to a relay" {
		t.Fatalf("%+v", p)
	}
}

func FuzzParsePhase(f *testing.F) {
	f.Add(`NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY="Done"`)
	f.Add(`ERR BOOTSTRAP PROGRESS=x TAG= SUMMARY="`)
	f.Add(`=" =`)
	f.Fuzz(func(t *testing.T, line string) {
		p := parsePhase(line)
		if p.progress < 0 || p.progress > 100 || len(p.line) > 1024 {
			t.Fatalf("%+v", p)
		}
	})
}

func TestKeyPersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", KeyFile)
	k1, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v; want 0600", st.Mode().Perm(), err)
	}
	k2, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if !k1.Equal(k2) {
		t.Fatal("a second load made a new key: the onion address would change on restart")
	}
	a1 := onionaddr.FromPublicKey(k1.Public().(ed25519.PublicKey))
	if _, err := onionaddr.Parse(a1); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKey(path); err == nil || !strings.Contains(err.Error(), "0600") {
		t.Fatalf("a world-readable key was accepted: %v", err)
	}
}

func TestParseKeyRefuses(t *testing.T) {
	good := "-----BEGIN " + keyPEMType + "-----\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n-----END " + keyPEMType + "-----\n"
	if _, err := ParseKey([]byte(good)); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{
		"",
		strings.ReplaceAll(good, keyPEMType, "PRIVATE KEY"),
		strings.Replace(good, "AAAA=", "AA==", 1), // 31 bytes
		good + "trailing",
		good + good,
	} {
		if _, err := ParseKey([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func FuzzParseKey(f *testing.F) {
	f.Add([]byte("-----BEGIN " + keyPEMType + "-----\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n-----END " + keyPEMType + "-----\n"))
	f.Add([]byte("-----BEGIN X-----\n-----END X-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		seed, err := ParseKey(data)
		if err == nil && len(seed) != ed25519.SeedSize {
			t.Fatalf("seed of %d bytes", len(seed))
		}
	})
}

func TestCheckAddr(t *testing.T) {
	host := onionaddr.FromPublicKey(make(ed25519.PublicKey, 32))
	if err := CheckAddr(host + ":9001"); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{host, host + ":0", host + ":09001", "127.0.0.1:9001", "example.onion:80"} {
		if CheckAddr(a) == nil {
			t.Errorf("CheckAddr(%q) accepted", a)
		}
	}
}

// TestSOCKSExtendedErrors: a SOCKS port with ExtendedErrors answers an onion
// dial with Tor's own reply codes; the dial's error says what they mean
// (here 0xF2, introduction failed, from a fake SOCKS server).
func TestSOCKSExtendedErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 512)
		// greeting: VER NMETHODS METHODS
		if _, err := io.ReadFull(c, buf[:2]); err != nil {
			return
		}
		if _, err := io.ReadFull(c, buf[:buf[1]]); err != nil {
			return
		}
		c.Write([]byte{5, 0})
		// request: VER CMD RSV ATYP=3 LEN HOST PORT
		if _, err := io.ReadFull(c, buf[:5]); err != nil {
			return
		}
		if _, err := io.ReadFull(c, buf[:int(buf[4])+2]); err != nil {
			return
		}
		c.Write([]byte{5, 0xF2, 0, 1, 0, 0, 0, 0, 0, 0})
	}()
	tr, err := newSOCKS(ln.Addr().String(), slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = tr.DialContext(ctx, "tcp", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.onion:9001")
	if err == nil || !strings.Contains(err.Error(), "onion service introduction failed") {
		t.Fatalf("dial: %v, want Tor's meaning of 0xF2", err)
	}
	if m := socksMeaning(errors.New("connection refused")); m != "" {
		t.Fatalf("meaning of a plain error: %q", m)
	}
}
