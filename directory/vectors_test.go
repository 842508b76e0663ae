package directory_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unfed/unfed/directory"
)

// Test vectors in spec/vectors/directory (spec/04-directory.md §12). They are
// regenerated from deterministic keys and compared byte for byte; set
// UNFED_UPDATE_VECTORS=1 to rewrite them after an intended format change.

const vectorDir = "../spec/vectors/directory"

func vectorFiles(t *testing.T) map[string][]byte {
	t.Helper()
	r := fullRelay(t)
	desc, err := r.Sign(t0)
	if err != nil {
		t.Fatal(err)
	}
	c, signers, set := threeSigned(t, false)
	pq, _, pqSet := threeSigned(t, true)
	rs := statusOf(t, r, directory.FlagValid)
	rs.Measured = 4321
	vote := offlineVote(t, signers[0], set, c.ValidAfter, map[string]int64{"guard-min-tps": 10}, rs)
	return map[string][]byte{
		"descriptor.txt":          desc,
		"vote.txt":                vote.Raw(),
		"consensus.txt":           c.Raw(),
		"consensus-pq.txt":        pq.Raw(),
		"authorities.txt":         authorityFile(set),
		"authorities-pq.txt":      authorityFile(pqSet),
		"consensus-verify-at.txt": []byte(c.ValidAfter.Format("2006-01-02 15:04:05") + "\n"),
	}
}

func b64(b []byte) string { return base64.RawStdEncoding.EncodeToString(b) }

func authorityFile(set directory.AuthoritySet) []byte {
	var b bytes.Buffer
	b.WriteString("# NAME HOST:PORT IDENTITY-BASE64 [MLDSA65-BASE64]\n")
	for _, a := range set.Authorities {
		fmt.Fprintf(&b, "%s %s %s", a.Name, a.Address, b64(a.Identity))
		if a.MLDSA != nil {
			raw, _ := a.MLDSA.MarshalBinary()
			fmt.Fprintf(&b, " %s", b64(raw))
		}
		b.WriteString("\n")
	}
	return b.Bytes()
}

func TestVectors(t *testing.T) {
	want := vectorFiles(t)
	if os.Getenv("UNFED_UPDATE_VECTORS") == "1" {
		if err := os.MkdirAll(vectorDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range want {
			if err := os.WriteFile(filepath.Join(vectorDir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, b := range want {
		got, err := os.ReadFile(filepath.Join(vectorDir, name))
		if err != nil {
			t.Fatalf("%v (run with UNFED_UPDATE_VECTORS=1 to create)", err)
		}
		if !bytes.Equal(got, b) {
			t.Errorf("%s: encoding differs from the vector", name)
		}
	}
	at := strings.TrimSpace(string(want["consensus-verify-at.txt"]))
	for _, c := range []struct{ cons, auth string }{{"consensus.txt", "authorities.txt"}, {"consensus-pq.txt", "authorities-pq.txt"}} {
		var out, errOut bytes.Buffer
		err := directory.ConsensusShow(context.Background(), []string{"--authorities", filepath.Join(vectorDir, c.auth), "--at", at,
			filepath.Join(vectorDir, c.cons)}, &out, &errOut)
		if err != nil || !strings.Contains(out.String(), "verified: signed by at least 2 of 3") || !strings.Contains(out.String(), "relays       1") || !strings.Contains(out.String(), " name=stories\n") {
			t.Errorf("%s: show: %v\n%s%s", c.cons, err, out.String(), errOut.String())
		}
	}
	// Without a trust file the output says the signatures were not checked.
	var out bytes.Buffer
	if err := directory.ConsensusShow(context.Background(), []string{filepath.Join(vectorDir, "consensus.txt")}, &out, &out); err != nil ||
		!strings.Contains(out.String(), "NOT verified") {
		t.Errorf("show without trust: %v\n%s", err, out.String())
	}
	// Expired at the real current time.
	if err := directory.ConsensusShow(context.Background(), []string{"--authorities", filepath.Join(vectorDir, "authorities.txt"),
		filepath.Join(vectorDir, "consensus.txt")}, &out, &out); err == nil {
		t.Error("show verified an expired consensus")
	}
	out.Reset()
	if err := directory.DescriptorShow(context.Background(), []string{filepath.Join(vectorDir, "descriptor.txt")}, &out, &out); err != nil ||
		!strings.Contains(out.String(), "signature valid") || !strings.Contains(out.String(), "stories260K layers [2,5)") {
		t.Errorf("descriptor show: %v\n%s", err, out.String())
	}
}
