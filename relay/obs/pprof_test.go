package obs

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
)

// TestPprofAddr: loopback addresses pass (a bare port and localhost become
// 127.0.0.1); anything else is refused unless remote binding is allowed.
func TestPprofAddr(t *testing.T) {
	for _, c := range []struct {
		addr, want string
		remote     bool
	}{
		{":6060", "127.0.0.1:6060", false},
		{"localhost:0", "127.0.0.1:0", false},
		{"127.0.0.1:0", "127.0.0.1:0", false},
		{"127.3.4.5:7", "127.3.4.5:7", false},
		{"[::1]:6060", "[::1]:6060", false},
		{"0.0.0.0:6060", "", false},
		{"[::]:6060", "", false},
		{"192.0.2.1:6060", "", false},
		{"relay.example:6060", "", false},
		{"0.0.0.0:6060", "0.0.0.0:6060", true},
		{"192.0.2.1:6060", "192.0.2.1:6060", true},
		{"6060", "", true},
		{"", "", false},
	} {
		got, err := PprofAddr(c.addr, c.remote)
		if got != c.want || (err == nil) != (c.want != "") {
			t.Errorf("PprofAddr(%q, %v) = %q, %v; want %q", c.addr, c.remote, got, err, c.want)
		}
	}
	if _, err := PprofAddr("0.0.0.0:6060", false); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("non-loopback error %v does not say why", err)
	}
}

// TestPprofServes: the listener answers the index, a heap profile and a
// one-second CPU profile (gzipped protobuf), and refuses a profile or trace
// longer than PprofMaxSeconds.
func TestPprofServes(t *testing.T) {
	s, err := ListenPprof("127.0.0.1:0", false, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	get := func(path string) (int, []byte) {
		resp, err := http.Get("http://" + s.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if code, body := get("/debug/pprof/"); code != 200 || !bytes.Contains(body, []byte("goroutine")) {
		t.Fatalf("index = %d %.200q", code, body)
	}
	if code, body := get("/debug/pprof/goroutine?debug=1"); code != 200 || !bytes.Contains(body, []byte("TestPprofServes")) {
		t.Fatalf("goroutine profile = %d %.200q", code, body)
	}
	for _, p := range []string{"/debug/pprof/heap", "/debug/pprof/profile?seconds=1"} {
		if code, body := get(p); code != 200 || !bytes.HasPrefix(body, []byte{0x1f, 0x8b}) {
			t.Fatalf("%s = %d %.200q", p, code, body)
		}
	}
	for _, p := range []string{"/debug/pprof/profile?seconds=3600", "/debug/pprof/trace?seconds=301", "/debug/pprof/profile?seconds=NaN", "/debug/pprof/trace?seconds=-1"} {
		if code, body := get(p); code != http.StatusBadRequest {
			t.Fatalf("%s = %d %.200q, want 400", p, code, body)
		}
	}
	if code, _ := get("/metrics"); code != 404 {
		t.Fatalf("/metrics on the pprof listener = %d", code)
	}
}
