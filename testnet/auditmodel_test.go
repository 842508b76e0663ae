package testnet

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestAuditModelIDWaitsForMode: the audit asks for the audited mode only.
// While the client lists anonymous paths alone (the parties not yet in the
// consensus) it waits, then takes the confidential name; if the mode never
// comes it fails instead of auditing another mode.
func TestAuditModelIDWaitsForMode(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ids := `"m:anonymous"`
		if calls.Add(1) > 2 {
			ids = `"m", "m:anonymous", "m:confidential"`
		}
		fmt.Fprintf(w, `{"object":"list","data":[%s]}`, objects(ids))
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	id, err := modelForMode(ctx, srv.URL, "confidential")
	if err != nil || id != "m:confidential" {
		t.Fatalf("got %q, %v; want m:confidential after waiting", id, err)
	}
	if calls.Load() < 3 {
		t.Fatalf("answered after %d calls, before the mode was listed", calls.Load())
	}
	short, cancel2 := context.WithTimeout(context.Background(), 1200*time.Millisecond)
	defer cancel2()
	if id, err := modelForMode(short, srv.URL, "nonexistent"); err == nil {
		t.Fatalf("a mode the client never lists gave %q", id)
	}
}

// objects turns a list of JSON strings into {"id": ...} objects.
func objects(ids string) string {
	var out []string
	for _, s := range strings.Split(ids, ", ") {
		out = append(out, `{"id":`+s+`}`)
	}
	return strings.Join(out, ",")
}
