package obfs4

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gitlab.com/yawning/obfs4.git/common/drbg"
	"gitlab.com/yawning/obfs4.git/common/probdist"
	"gitlab.com/yawning/obfs4.git/transports/obfs4/framing"

	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/transports/base"
)

func listen(t *testing.T, stateDir string, opts base.Args) base.Listener {
	t.Helper()
	sf, err := Transport{}.ServerFactory(base.Config{Options: opts})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ln, err := sf.Listen(ctx, "127.0.0.1:0", stateDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func dial(t *testing.T, ln base.Listener) net.Conn {
	t.Helper()
	cf, err := Transport{}.ClientFactory(context.Background(), base.Config{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := cf.ParseArgs(ln.Args())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRoundTripIATModes(t *testing.T) {
	for _, iat := range []string{"0", "1", "2"} {
		t.Run("iat-mode="+iat, func(t *testing.T) {
			ln := listen(t, t.TempDir(), base.Args{ArgIATMode: {iat}})
			if got, _ := ln.Args().Get(ArgIATMode); got != iat {
				t.Fatalf("published iat-mode %q, want %s", got, iat)
			}
			go func() {
				s, err := ln.Accept()
				if err != nil {
					return
				}
				defer s.Close()
				io.Copy(s, s)
			}()
			c := dial(t, ln)
			msg := make([]byte, 64<<10)
			rand.Read(msg)
			go c.Write(msg)
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(c, got); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, msg) {
				t.Fatal("echo differs")
			}
		})
	}
}

func TestStateFileCreatedOnce(t *testing.T) {
	dir := t.TempDir()
	cert1, _ := listen(t, dir, nil).Args().Get(ArgCert)
	fi, err := os.Stat(filepath.Join(dir, StateFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file mode %v, want 0600", fi.Mode().Perm())
	}
	before, _ := os.ReadFile(filepath.Join(dir, StateFile))
	ln2 := listen(t, dir, base.Args{ArgIATMode: {"1"}})
	cert2, _ := ln2.Args().Get(ArgCert)
	if cert1 == "" || cert1 != cert2 {
		t.Fatalf("identity changed across restarts: %q then %q", cert1, cert2)
	}
	if iat, _ := ln2.Args().Get(ArgIATMode); iat != "1" {
		t.Fatalf("iat-mode option not applied: %v", ln2.Args())
	}
	if after, _ := os.ReadFile(filepath.Join(dir, StateFile)); !bytes.Equal(before, after) {
		t.Fatal("state file rewritten on restart")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("state directory holds %d entries, want only %s", len(ents), StateFile)
	}
	if err := os.Chmod(filepath.Join(dir, StateFile), 0o644); err != nil {
		t.Fatal(err)
	}
	sf, _ := Transport{}.ServerFactory(base.Config{})
	if _, err := sf.Listen(context.Background(), "127.0.0.1:0", dir); err == nil || !strings.Contains(err.Error(), "0600") {
		t.Fatalf("world-readable state file accepted: %v", err)
	}
}

func TestBadOptionsAndArgs(t *testing.T) {
	for _, o := range []base.Args{{ArgIATMode: {"3"}}, {"bogus": {"1"}}, {OptHandshakeTimeout: {"-1s"}}} {
		if _, err := (Transport{}).ServerFactory(base.Config{Options: o}); err == nil {
			t.Errorf("options %v accepted", o)
		}
	}
	cf, _ := Transport{}.ClientFactory(context.Background(), base.Config{})
	for _, a := range []base.Args{{}, {ArgCert: {"abc"}, ArgIATMode: {"0"}}} {
		if _, err := cf.ParseArgs(a); err == nil {
			t.Errorf("args %v accepted", a)
		}
	}
}

// TestObfs4ProbeResistance: random bytes and a truncated real handshake get
// no byte back, and the server closes only after its handshake timeout.
func TestObfs4ProbeResistance(t *testing.T) {
	const timeout = time.Second
	ln := listen(t, t.TempDir(), base.Args{OptHandshakeTimeout: {timeout.String()}})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	short, long := make([]byte, 100), make([]byte, 10000)
	rand.Read(short)
	rand.Read(long)
	probes := map[string]func(net.Conn) error{
		"random 100 bytes":   func(c net.Conn) error { _, err := c.Write(short); return err },
		"random 10000 bytes": func(c net.Conn) error { _, err := c.Write(long); return err },
		"truncated handshake": func(c net.Conn) error {
			hs, err := clientHandshakeBytes(t, ln)
			if err != nil {
				return err
			}
			_, err = c.Write(hs[:len(hs)/2])
			return err
		},
	}
	for name, probe := range probes {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			start := time.Now()
			if err := probe(c); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(10 * timeout))
			n, err := c.Read(make([]byte, 1))
			elapsed := time.Since(start)
			if n != 0 {
				t.Fatalf("server answered a probe with %d bytes", n)
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("server never closed the probe's connection")
			}
			if elapsed < timeout/2 {
				t.Fatalf("probe's connection closed after %v, before the handshake timeout %v", elapsed, timeout)
			}
		})
	}
}

// clientHandshakeBytes captures the first bytes a real obfs4 client sends to
// ln's identity, through a local sink that never answers.
func clientHandshakeBytes(t *testing.T, ln base.Listener) ([]byte, error) {
	sink, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer sink.Close()
	cf, _ := Transport{}.ClientFactory(context.Background(), base.Config{})
	d, err := cf.ParseArgs(ln.Args())
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go d.DialContext(ctx, sink.Addr().String())
	c, err := sink.Accept()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	buf := make([]byte, 9000)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := c.Read(buf)
	if n < 64 {
		return nil, errors.Join(errors.New("short client handshake"), err)
	}
	return buf[:n], nil
}

func TestBridgeLineRoundTrip(t *testing.T) {
	ln := listen(t, t.TempDir(), base.Args{ArgIATMode: {"2"}})
	id, _ := keys.NewIdentity(nil)
	line := BridgeLine("192.0.2.7:443", id.Fingerprint(), ln.Args())
	if !strings.HasPrefix(line, "obfs4 192.0.2.7:443 "+id.Fingerprint().String()+" cert=") || !strings.HasSuffix(line, " iat-mode=2") {
		t.Fatalf("bridge line %q not in Tor's format", line)
	}
	b, err := ParseBridgeLine("Bridge " + line)
	if err != nil {
		t.Fatal(err)
	}
	if b.Transport != Name || b.Addr != "192.0.2.7:443" || b.Fingerprint != id.Fingerprint() {
		t.Fatalf("parsed %+v", b)
	}
	if b.String() != line {
		t.Fatalf("re-formatted %q, want %q", b.String(), line)
	}
	for _, bad := range []string{
		"", "obfs4", "obfs4 1.2.3.4:1 " + id.Fingerprint().String(),
		"obfs4 1.2.3.4 " + id.Fingerprint().String() + " cert=x iat-mode=0",
		"obfs4 1.2.3.4:0 " + id.Fingerprint().String(),
		strings.Replace(line, "iat-mode=2", "iat-mode=7", 1),
		strings.Replace(line, id.Fingerprint().String(), "XYZ", 1),
		"9bad 1.2.3.4:5 " + id.Fingerprint().String(),
	} {
		if _, err := ParseBridgeLine(bad); !errors.Is(err, ErrBadBridgeLine) {
			t.Errorf("%q: got %v, want ErrBadBridgeLine", bad, err)
		}
	}
}

func FuzzParseBridgeLine(f *testing.F) {
	fp := strings.Repeat("AB", 20)
	f.Add("obfs4 192.0.2.1:443 " + fp + " cert=" + strings.Repeat("A", certBase64Len) + " iat-mode=0")
	f.Add("Bridge obfs4 [2001:db8::1]:9001 $" + fp + " cert=x iat-mode=1")
	f.Add("meek 1.2.3.4:80 " + fp + " url=https://x/ front=y")
	f.Add("tcp 1.2.3.4:80 " + fp)
	f.Add("obfs4 :1 " + fp)
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseBridgeLine(s)
		if err != nil {
			return
		}
		b2, err := ParseBridgeLine(b.String())
		if err != nil {
			t.Fatalf("re-formatted line %q does not parse: %v", b.String(), err)
		}
		if b2.String() != b.String() {
			t.Fatalf("round trip changed %q to %q", b.String(), b2.String())
		}
	})
}

// TestLengthTableCheck checks lengthTableHasZero against the library's own
// table (its String lists every value of weight above 0.01) over many
// seeds, finds seeds with and without 0 at about the rate the library's
// construction implies, and checks that safeLengthSeed always ends on a
// table without 0 and leaves good seeds alone.
func TestLengthTableCheck(t *testing.T) {
	withZero := 0
	const seeds = 2000
	for i := 0; i < seeds; i++ {
		var b [drbg.SeedLength]byte
		b[0], b[1] = byte(i), byte(i>>8)
		seed, err := drbg.SeedFromBytes(b[:])
		if err != nil {
			t.Fatal(err)
		}
		table := probdist.New(seed, 0, framing.MaximumSegmentLength, false).String()
		listed := strings.Contains(table, "[ 0: ") || strings.Contains(table, " 0: ")
		has := lengthTableHasZero(seed)
		if listed && !has {
			t.Fatalf("seed %d: library table %s lists 0, the check says no", i, table)
		}
		if has {
			withZero++
			safe, err := safeLengthSeed(seed)
			if err != nil {
				t.Fatal(err)
			}
			if lengthTableHasZero(safe) || strings.Contains(probdist.New(safe, 0, framing.MaximumSegmentLength, false).String(), " 0: ") {
				t.Fatalf("seed %d: safeLengthSeed gave a table with 0", i)
			}
		} else if safe, _ := safeLengthSeed(seed); safe != seed {
			t.Fatalf("seed %d: a good seed was replaced", i)
		}
	}
	// Expected rate: E[kept]/1449 with kept uniform in 1..100, about 3.5 %.
	if withZero < seeds/100 || withZero > seeds/10 {
		t.Fatalf("%d of %d tables hold 0; expected about 3.5 %%", withZero, seeds)
	}
	t.Logf("%d of %d length tables hold 0", withZero, seeds)
}

// TestWritePanicBecomesError: a panic in the wrapped conn's Write closes the
// connection and returns ErrLibraryPanic instead of crashing.
func TestWritePanicBecomesError(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	c := &conn{Conn: panicConn{a}, raw: a}
	if _, err := c.Write([]byte("x")); !errors.Is(err, ErrLibraryPanic) {
		t.Fatalf("Write: %v, want ErrLibraryPanic", err)
	}
	if _, err := a.Write([]byte("x")); err == nil {
		t.Fatal("the raw connection is still open")
	}
}

type panicConn struct{ net.Conn }

func (panicConn) Write([]byte) (int, error) { panic("BUG: Write(), iat length was 0") }
