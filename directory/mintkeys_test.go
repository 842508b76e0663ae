package directory_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/unfed/unfed/directory"
)

// vectorMintPKIX returns the mint key of spec/vectors/economy (a 2048-bit
// RSA key), so documents made in tests stay deterministic.
func vectorMintPKIX(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("../spec/vectors/economy/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		PKIX string `json:"mint_key_pkix"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	der, err := hex.DecodeString(v.PKIX)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// checkParsedMintKeys checks what a parser accepted: keys only in a
// document whose method carries them, each of a dir-source, a valid RSA
// key, sorted and unique, at most MaxMintKeysPerAuthority per authority.
func checkParsedMintKeys(t *testing.T, method int, sources []directory.DirSource, ks []directory.MintKey) {
	t.Helper()
	if len(ks) > 0 && method < directory.MintKeyMethod {
		t.Fatalf("method-%d document with %d mint keys", method, len(ks))
	}
	per := map[string]int{}
	for i, k := range ks {
		if !slices.ContainsFunc(sources, func(d directory.DirSource) bool { return d.Fingerprint == k.Authority }) {
			t.Fatalf("mint key of %s, not a dir-source", k.Authority)
		}
		if _, err := k.RSAKey(); err != nil || k.Denom == 0 || k.Denom > directory.MaxMintDenom {
			t.Fatalf("accepted mint key %s: %v", k, err)
		}
		if i > 0 && (bytes.Compare(ks[i-1].Authority[:], k.Authority[:]) > 0 ||
			ks[i-1].Authority == k.Authority && (ks[i-1].Epoch > k.Epoch || ks[i-1].Epoch == k.Epoch && ks[i-1].Denom >= k.Denom)) {
			t.Fatalf("mint keys unsorted or repeated at %d", i)
		}
		if per[k.Authority.String()]++; per[k.Authority.String()] > directory.MaxMintKeysPerAuthority {
			t.Fatalf("more than %d keys of %s", directory.MaxMintKeysPerAuthority, k.Authority)
		}
	}
}

// TestConsensusMintKeys: a method-5 consensus lists every voter's own
// mint keys, sorted; a consensus of an older method lists none, and the
// consensus carries the economy parameters as any other.
func TestConsensusMintKeys(t *testing.T) {
	signers, set := offlineAuthorities(t, 3, false)
	va := t0.Truncate(time.Hour).Add(time.Hour)
	der := vectorMintPKIX(t)
	params := map[string]int64{directory.ParamPayRequired: 1, directory.ParamStake: 50, directory.ParamPPLNSWindow: 30}
	var votes []*directory.Vote
	for i, s := range signers {
		v := offlineVote(t, s, set, va, params)
		// Authority i publishes keys for epochs 100+i and 101+i.
		v.MintKeys = []directory.MintKey{
			{Authority: v.Authority.Fingerprint, Epoch: uint64(101 + i), Denom: 10, PKIX: der},
			{Authority: v.Authority.Fingerprint, Epoch: uint64(100 + i), Denom: 1, PKIX: der},
		}
		slices.SortFunc(v.MintKeys, func(a, b directory.MintKey) int { return int(a.Epoch) - int(b.Epoch) })
		if err := s.SignVote(v); err != nil {
			t.Fatal(err)
		}
		votes = append(votes, v)
	}
	c, err := directory.ComputeConsensus(votes, set)
	if err != nil {
		t.Fatal(err)
	}
	c = signAll(t, c, signers...)
	u, err := directory.ParseConsensus(c.Raw())
	if err != nil {
		t.Fatal(err)
	}
	got, err := u.Verify(set, va.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if got.Method != directory.MintKeyMethod || len(got.MintKeys) != 6 {
		t.Fatalf("method %d, %d mint keys; want method %d and 6", got.Method, len(got.MintKeys), directory.MintKeyMethod)
	}
	checkParsedMintKeys(t, got.Method, got.Authorities, got.MintKeys)
	for _, k := range got.MintKeys {
		if !bytes.Equal(k.PKIX, der) {
			t.Fatalf("key %s changed", k)
		}
	}
	// At epoch 101 credits of epochs 100 and 101 are redeemable: two keys
	// of authority 0, one of authority 1, none of authority 2.
	if n := len(got.MintKeysAt(101)); n != 3 {
		t.Errorf("keys usable at epoch 101: %d, want 3", n)
	}
	if got.Param(directory.ParamPayRequired, 0) != 1 || got.Param(directory.ParamStake, 0) != 50 || got.Param(directory.ParamPPLNSWindow, 0) != 30 {
		t.Errorf("economy params = %v", got.Params)
	}
	if e := got.MintEpoch(time.Unix(86400*3+5, 0)); e != 3 {
		t.Errorf("mint epoch = %d, want 3 at the default epoch length", e)
	}

	// A majority on method 4: the keys are dropped, and a parser rejects
	// them in such a consensus.
	for i, s := range signers {
		votes[i].Methods = []int{1, 2, 3, 4}
		if err := s.SignVote(votes[i]); err != nil {
			t.Fatal(err)
		}
	}
	old, err := directory.ComputeConsensus(votes, set)
	if err != nil {
		t.Fatal(err)
	}
	if old.Method != 4 || len(old.MintKeys) != 0 || bytes.Contains(old.Raw(), []byte("mint-key")) {
		t.Fatalf("method %d consensus with %d mint keys", old.Method, len(old.MintKeys))
	}
	bad := bytes.Replace(c.Raw(), []byte(fmt.Sprintf("consensus-method %d\n", directory.MintKeyMethod)), []byte("consensus-method 4\n"), 1)
	if _, err := directory.ParseConsensus(bad); err == nil || !strings.Contains(err.Error(), "mint-key in a method-4 consensus") {
		t.Errorf("method-4 consensus with mint keys: %v", err)
	}
}

// TestMintKeyLinesStrict edits one mint-key line of a vote and a
// consensus: each malformed line is rejected with a clear error.
func TestMintKeyLinesStrict(t *testing.T) {
	c, signers, set := threeSigned(t, false)
	raw := c.Raw()
	i := bytes.Index(raw, []byte("\nmint-key "))
	line := raw[i+1 : i+1+bytes.IndexByte(raw[i+1:], '\n')+1]
	f := strings.Fields(string(line))
	fp, key := f[1], f[4]
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, _ := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	smallDER, _ := x509.MarshalPKIXPublicKey(&small.PublicKey)
	enc := base64.RawStdEncoding.EncodeToString
	for _, tc := range []struct{ name, new, want string }{
		{"as made", string(line), ""},
		{"unknown authority", "mint-key " + strings.Repeat("AB", 20) + " 20000 10 " + key + "\n", "not a dir-source"},
		{"lower-case fingerprint", "mint-key " + strings.ToLower(fp) + " 20000 10 " + key + "\n", "upper-case"},
		{"repeated", string(line) + string(line), "unsorted or repeated"},
		{"denomination 0", "mint-key " + fp + " 20000 0 " + key + "\n", "bad denomination"},
		{"denomination too large", "mint-key " + fp + " 20000 1099511627777 " + key + "\n", "bad denomination"},
		{"leading zero", "mint-key " + fp + " 020000 10 " + key + "\n", "bad number"},
		{"not RSA", "mint-key " + fp + " 20000 10 " + enc(ecDER) + "\n", "want RSA"},
		{"small RSA", "mint-key " + fp + " 20000 10 " + enc(smallDER) + "\n", "1024 bits"},
		{"not DER", "mint-key " + fp + " 20000 10 AAAA\n", "mint key"},
		{"padded base64", "mint-key " + fp + " 20000 10 " + key + "=\n", "bad base64"},
		{"too few", "mint-key " + fp + " 20000 10\n", "want AUTHORITY"},
		{"too long", "mint-key " + fp + " 20000 10 " + strings.Repeat("A", 2000) + "\n", "too long"},
	} {
		_, err := directory.ParseConsensus(bytes.Replace(raw, line, []byte(tc.new), 1))
		if tc.want == "" && err != nil || tc.want != "" && (!errors.Is(err, directory.ErrBadDocument) || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
	// At most MaxMintKeysPerAuthority lines of one authority.
	var many []byte
	for e := range directory.MaxMintKeysPerAuthority + 1 {
		many = fmt.Appendf(many, "mint-key %s %d 10 %s\n", fp, e, key)
	}
	if _, err := directory.ParseConsensus(bytes.Replace(raw, line, many, 1)); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("more than %d mint keys", directory.MaxMintKeysPerAuthority)) {
		t.Errorf("%d keys of one authority: %v", directory.MaxMintKeysPerAuthority+1, err)
	}
	// A vote names only its own authority's keys.
	v := offlineVote(t, signers[0], set, c.ValidAfter, nil)
	other := set.Authorities[1].Fingerprint.String()
	vb := bytes.Replace(v.Raw(), []byte("mint-key "+v.Authority.Fingerprint.String()), []byte("mint-key "+other), 1)
	if _, err := directory.ParseVote(vb); err == nil || !strings.Contains(err.Error(), "not a dir-source") {
		t.Errorf("vote with another authority's key: %v", err)
	}
}

// TestRateLimit: one source gets its burst, then 429 with Retry-After;
// another source is not affected.
func TestRateLimit(t *testing.T) {
	h := directory.RateLimit(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), 0.001, 3)
	do := func(addr string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "/mint/v1/issue", nil)
		r.RemoteAddr = addr
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	for i := range 3 {
		if w := do("10.0.0.1:1000"); w.Code != http.StatusOK {
			t.Fatalf("request %d: %d", i, w.Code)
		}
	}
	if w := do("10.0.0.1:2000"); w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
		t.Fatalf("over the burst: %d", w.Code)
	}
	if w := do("10.0.0.2:1000"); w.Code != http.StatusOK {
		t.Fatalf("another source: %d", w.Code)
	}
}
