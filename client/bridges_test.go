package client

import (
	"strings"
	"testing"
)

func TestParseBridges(t *testing.T) {
	good := "obfs4 127.0.0.1:443 " + strings.Repeat("AB", 20) + " cert=" + strings.Repeat("A", 70) + " iat-mode=0"
	bs, err := parseBridges([]string{good})
	if err != nil || len(bs) != 1 || bs[0].Transport != "obfs4" || bs[0].Addr != "127.0.0.1:443" {
		t.Fatalf("parseBridges(good) = %+v, %v", bs, err)
	}
	for _, bad := range []string{"", "obfs4 127.0.0.1:443", "obfs4 127.0.0.1:443 NOTAFINGERPRINT"} {
		if _, err := parseBridges([]string{good, bad}); err == nil || !strings.Contains(err.Error(), "bridges[1]") {
			t.Errorf("parseBridges(%q) = %v, want an error naming bridges[1]", bad, err)
		}
	}
}
