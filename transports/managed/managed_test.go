package managed

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/transports/base"
)

// TestMain doubles as a fake PT: with UNFED_FAKE_PT_LINES set, the test
// binary prints those lines (separated by '|') and waits for stdin to close,
// as TOR_PT_EXIT_ON_STDIN_CLOSE asks.
func TestMain(m *testing.M) {
	if lines, ok := os.LookupEnv("UNFED_FAKE_PT_LINES"); ok {
		if os.Getenv("TOR_PT_MANAGED_TRANSPORT_VER") != "1" || os.Getenv("TOR_PT_EXIT_ON_STDIN_CLOSE") != "1" {
			fmt.Println("ENV-ERROR missing managed transport variables")
		}
		for _, l := range strings.Split(lines, "|") {
			l = strings.ReplaceAll(l, "$BINDADDR", os.Getenv("TOR_PT_SERVER_BINDADDR"))
			fmt.Println(l)
		}
		fmt.Fprintln(os.Stderr, "fake PT on stderr")
		io.Copy(io.Discard, bufio.NewReader(os.Stdin))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func fakePT(t *testing.T, lines ...string) base.Config {
	t.Helper()
	t.Setenv("UNFED_FAKE_PT_LINES", strings.Join(lines, "|"))
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return base.Config{StateDir: t.TempDir(), PT: base.PTConfig{Path: exe, Method: "obfs4"}}
}

func TestParseLine(t *testing.T) {
	cases := []struct {
		in   string
		want Line
	}{
		{"VERSION 1", Line{Kind: KindVersion, Version: "1"}},
		{"CMETHOD obfs4 socks5 127.0.0.1:4567", Line{Kind: KindCmethod, Method: "obfs4", Proto: "socks5", Addr: "127.0.0.1:4567"}},
		{"CMETHOD-ERROR obfs4 no such thing", Line{Kind: KindCmethodError, Method: "obfs4", Msg: "no such thing"}},
		{"CMETHODS DONE", Line{Kind: KindCmethodsDone}},
		{"ENV-ERROR missing TOR_PT_ORPORT", Line{Kind: KindEnvError, Msg: "missing TOR_PT_ORPORT"}},
		{"SMETHODS DONE", Line{Kind: KindSmethodsDone}},
		{"FUTURE-KEYWORD x y", Line{Kind: KindOther, Msg: "FUTURE-KEYWORD x y"}},
	}
	for _, c := range cases {
		got, err := ParseLine(c.in)
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%q: got %+v, want %+v", c.in, got, c.want)
		}
	}
	l, err := ParseLine(`SMETHOD obfs4 [::1]:9000 ARGS:cert=abc+/d,iat-mode=1,odd=a\,b\=c`)
	if err != nil {
		t.Fatal(err)
	}
	if l.Addr != "[::1]:9000" || l.Args["cert"][0] != "abc+/d" || l.Args["iat-mode"][0] != "1" || l.Args["odd"][0] != "a,b=c" {
		t.Fatalf("SMETHOD parsed as %+v", l)
	}
	for _, bad := range []string{"VERSION", "CMETHOD obfs4 socks5", "CMETHOD obfs4 socks5 host:1", "CMETHOD 9x socks5 1.2.3.4:5",
		"SMETHOD obfs4 1.2.3.4:0", "SMETHOD obfs4 1.2.3.4:5 ARGS:novalue", "CMETHODS", "SMETHODS NOT", strings.Repeat("x", maxLineLen+1)} {
		if _, err := ParseLine(bad); !errors.Is(err, ErrBadLine) {
			t.Errorf("%.40q: got %v, want ErrBadLine", bad, err)
		}
	}
}

func FuzzParseLine(f *testing.F) {
	for _, s := range []string{"VERSION 1", "CMETHOD obfs4 socks5 127.0.0.1:1", "SMETHOD obfs4 0.0.0.0:2 ARGS:cert=x\\,y,iat-mode=0",
		"CMETHOD-ERROR obfs4 x", "SMETHODS DONE", "LOG SEVERITY=notice MESSAGE=\"hi\"", "ENV-ERROR", "SMETHOD a [::]:1 ARGS:\\"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseLine(s)
		if err != nil {
			if !errors.Is(err, ErrBadLine) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if (l.Kind == KindCmethod || l.Kind == KindSmethod) && checkHostPort(l.Addr) != nil {
			t.Fatalf("accepted bad address %q", l.Addr)
		}
	})
}

func TestClientSetupErrors(t *testing.T) {
	cases := map[string][]string{
		"env error":     {"ENV-ERROR no state location"},
		"version":       {"VERSION 2"},
		"cmethod error": {"VERSION 1", "CMETHOD-ERROR obfs4 broken", "CMETHODS DONE"},
		"no cmethod":    {"VERSION 1", "CMETHOD other socks5 127.0.0.1:9", "CMETHODS DONE"},
		"socks4":        {"VERSION 1", "CMETHOD obfs4 socks4 127.0.0.1:9", "CMETHODS DONE"},
		"garbage":       {"VERSION 1", "CMETHOD obfs4 socks5 nowhere"},
		"version-error": {"VERSION-ERROR no-version"},
	}
	for name, lines := range cases {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c, err := StartClient(ctx, fakePT(t, lines...))
			if err == nil {
				c.Close()
				t.Fatal("setup succeeded")
			}
		})
	}
}

func TestServerSetupError(t *testing.T) {
	cfg := fakePT(t, "VERSION 1", "SMETHOD-ERROR obfs4 cannot bind", "SMETHODS DONE")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if l, err := Listen(ctx, cfg, "127.0.0.1:0", t.TempDir()); err == nil {
		l.Close()
		t.Fatal("setup succeeded")
	}
}

func TestProcessLifetime(t *testing.T) {
	cfg := fakePT(t, "VERSION 1", "CMETHOD obfs4 socks5 127.0.0.1:9", "CMETHODS DONE")
	// Close: stdin closes and the PT exits by itself (exit code 0, not killed).
	c, err := StartClient(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if c.SOCKSAddr() != "127.0.0.1:9" {
		t.Fatalf("SOCKS address %q", c.SOCKSAddr())
	}
	c.Close()
	if code := c.proc.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("PT exit code %d, want a clean exit on stdin close", code)
	}
	// Context: cancelling it stops the PT.
	ctx, cancel := context.WithCancel(context.Background())
	c, err = StartClient(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case <-c.proc.exited:
	case <-time.After(20 * time.Second):
		t.Fatal("PT outlived its context")
	}
	// Server side: SMETHOD gives the public address and args.
	scfg := fakePT(t, "VERSION 1", "SMETHOD obfs4 127.0.0.1:7000 ARGS:cert=abc,iat-mode=0", "SMETHODS DONE")
	scfg.Options = base.Args{"iat-mode": {"0"}}
	l, err := Listen(context.Background(), scfg, ":0", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Addr().String() != "127.0.0.1:7000" || l.Args()["cert"][0] != "abc" {
		t.Fatalf("listener %v %v", l.Addr(), l.Args())
	}
	var fp keys.Fingerprint
	fp[0] = 0xAB
	if got, want := l.BridgeLine(fp), "obfs4 127.0.0.1:7000 "+fp.String()+" cert=abc iat-mode=0"; got != want {
		t.Fatalf("bridge line %q, want %q", got, want)
	}
}

func TestSplitArgs(t *testing.T) {
	u, p, err := splitArgs("")
	if err != nil || !bytes.Equal(u, []byte{0}) || !bytes.Equal(p, []byte{0}) {
		t.Fatalf("empty args: %q %q %v", u, p, err)
	}
	long := strings.Repeat("k", 300)
	u, p, _ = splitArgs(long)
	if len(u) != 255 || string(u)+string(p) != long {
		t.Fatal("long args not split at 255")
	}
	if _, _, err := splitArgs(strings.Repeat("k", 511)); err == nil {
		t.Fatal("over-long args accepted")
	}
	a := base.Args{"cert": {"a;b=c"}, "iat-mode": {"0"}}
	back, err := base.ParseArgs(a.Encode(';', ""), ';')
	if err != nil || back["cert"][0] != "a;b=c" {
		t.Fatalf("args did not survive encoding: %v %v", back, err)
	}
}

// RequireObfs4proxy returns obfs4proxy's path. Outside CI a missing binary
// skips the test; in CI it fails it.
func requireObfs4proxy(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("obfs4proxy")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("obfs4proxy not installed; run make deps")
		}
		t.Skip("obfs4proxy not installed; run make deps")
	}
	return p
}

func TestObfs4proxyClientAndServer(t *testing.T) {
	path := requireObfs4proxy(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pt := base.PTConfig{Path: path, Method: "obfs4"}
	srv, err := Listen(ctx, base.Config{PT: pt, Options: base.Args{"iat-mode": {"1"}}}, "127.0.0.1:0", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if iat, _ := srv.Args().Get("iat-mode"); iat != "1" {
		t.Fatalf("server args %v, want iat-mode=1", srv.Args())
	}
	go func() {
		c, err := srv.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
	}()
	cli, err := StartClient(ctx, base.Config{PT: pt})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	d, err := cli.ParseArgs(srv.Args())
	if err != nil {
		t.Fatal(err)
	}
	c, err := d.DialContext(ctx, srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := make([]byte, 256<<10)
	rand.Read(msg)
	go c.Write(msg)
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatal("echo through two obfs4proxy processes differs")
	}
	var _ net.Conn = c
}
