package directory

import (
	"fmt"
	"testing"
	"time"

	"github.com/unfed/unfed/relay/keys"
)

// FuzzVerifyUpload: the Unfed-Authority header of a vote upload (spec
// §10.1) is parsed without panicking, and only a header signed by the
// configured peer verifies.
func FuzzVerifyUpload(f *testing.F) {
	var entries []AuthorityEntry
	var dirs []string
	var ids []*keys.Identity
	for i := range 2 {
		dir := f.TempDir()
		ks, err := keys.Open(dir, keys.Options{})
		if err != nil {
			f.Fatal(err)
		}
		entries = append(entries, EntryFor(fmt.Sprintf("a%d", i), fmt.Sprintf("127.0.0.1:%d", 7100+i), ks.Identity(), nil))
		dirs, ids = append(dirs, dir), append(ids, ks.Identity())
	}
	now := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	a, err := NewAuthority(AuthorityConfig{DataDir: dirs[0], Authorities: entries, Interval: time.Hour, Now: func() time.Time { return now }}, nil, nil)
	if err != nil {
		f.Fatal(err)
	}
	good := signUpload(&Signer{Identity: ids[1]}, PathVote, now, []byte("vote"))
	f.Add(good)
	f.Add(signUpload(&Signer{Identity: ids[0]}, PathVote, now, []byte("vote")))
	f.Add("")
	f.Add("00 1 2 3")
	f.Fuzz(func(t *testing.T, h string) {
		au, err := a.verifyUpload(PathVote, h, now)
		if err == nil && au.from.Fingerprint != ids[1].Fingerprint() {
			t.Fatalf("header %q verified as %s", h, au.from.Name)
		}
	})
}
