package obfs4

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestBridgeLineVectors(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "spec", "vectors", "link", "bridge_lines.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Valid []struct {
			Line, Transport, Addr, Fingerprint string
		}
		Invalid []struct{ Line, Why string }
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	for _, c := range v.Valid {
		br, err := ParseBridgeLine(c.Line)
		if err != nil {
			t.Fatalf("%q: %v", c.Line, err)
		}
		if br.Transport != c.Transport || br.Addr != c.Addr || br.Fingerprint.String() != c.Fingerprint {
			t.Fatalf("%q parsed as %+v", c.Line, br)
		}
	}
	for _, c := range v.Invalid {
		if _, err := ParseBridgeLine(c.Line); !errors.Is(err, ErrBadBridgeLine) {
			t.Errorf("%q (%s): got %v", c.Line, c.Why, err)
		}
	}
}
