package directory

import (
	"bytes"
	"crypto/rand"
	"errors"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/unfed/unfed/compute/model"
	"github.com/unfed/unfed/compute/modeltest"
	"github.com/unfed/unfed/compute/mpc"
	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/relay/verify"
	"github.com/unfed/unfed/relay/verify/verifytest"
)

// TestJudgeProof: a true fraud proof makes the authority vote BadCompute on
// the signer (whether or not it is Running) and only on it; an honest
// commitment, a replay, a proof by a relay serving another shard and a
// forged signature are rejected, the last three without re-execution.
func TestJudgeProof(t *testing.T) {
	sh, err := model.Load(modeltest.Path(t, "stories260K.gguf"), model.ShardOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Close()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var slashed []keys.Fingerprint // what OnFraud (the share-chain's slash) was told
	a := &Authority{cfg: AuthorityConfig{Now: func() time.Time { return now },
		OnFraud: func(fp keys.Fingerprint, _ []byte) { slashed = append(slashed, fp) }}, log: slog.New(slog.DiscardHandler),
		descs: map[keys.Fingerprint]*Descriptor{}}
	mk := func(first, last int) *keys.Identity {
		id, err := keys.NewIdentity(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		a.descs[id.Fingerprint()] = &Descriptor{Identity: id.Public, Roles: []Role{RoleCompute},
			Compute: &ComputeInfo{Model: "stories260K", Layers: LayerRange{First: first, Last: last}}}
		return id
	}
	cheat, honest, other := mk(0, 5), mk(0, 5), mk(0, 3)
	reexec := 0
	load := func(string, int, int) (*model.Shard, func(), error) { reexec++; return sh, func() {}, nil }
	ids := []int{1, 403, 407}

	wrong := [32]byte{9}
	proof := verifytest.TokenTicket(t, sh, "stories260K", cheat, ids, &wrong)
	if fp, v, err := a.JudgeProof(proof, load); err != nil || v != verify.Fraud || fp != cheat.Fingerprint() {
		t.Fatalf("true proof: %v %v %v", fp, v, err)
	}
	if _, _, err := a.JudgeProof(proof, load); !errors.Is(err, ErrProofReplay) {
		t.Fatalf("replay: %v", err)
	}
	if _, v, err := a.JudgeProof(verifytest.TokenTicket(t, sh, "stories260K", honest, ids, nil), load); err != nil || v != verify.Honest {
		t.Fatalf("honest commitment: %v %v", v, err)
	}
	if reexec != 2 {
		t.Fatalf("%d re-executions, want 2", reexec)
	}
	if _, _, err := a.JudgeProof(verifytest.TokenTicket(t, sh, "stories260K", other, ids, &wrong), load); !errors.Is(err, ErrProofSigner) {
		t.Fatalf("other shard's relay: %v", err)
	}
	forged := verifytest.TokenTicket(t, sh, "stories260K", honest, ids, &wrong)
	forged[len(forged)-12-64-1] ^= 1 // a byte of the signature
	if _, _, err := a.JudgeProof(forged, load); !errors.Is(err, verify.ErrSignature) {
		t.Fatalf("forged signature: %v", err)
	}
	if reexec != 2 {
		t.Fatalf("a rejected proof was re-executed (%d)", reexec)
	}
	if len(slashed) != 1 || slashed[0] != cheat.Fingerprint() {
		t.Fatalf("OnFraud called for %v, want only the cheater", slashed)
	}

	in := &flagInputs{now: now, history: map[keys.Fingerprint]*reach{}, bad: a.fraud.badSet(now)}
	for _, c := range []struct {
		id   *keys.Identity
		want bool
	}{{cheat, true}, {honest, false}, {other, false}} {
		flags := assignFlags(a.descs[c.id.Fingerprint()], in)
		if got := len(flags) > 0 && flags[0] == FlagBadCompute; got != c.want {
			t.Fatalf("relay %s flags %v, BadCompute want %v", c.id.Fingerprint(), flags, c.want)
		}
	}
	if a.fraud.badSet(now.Add(badComputeFor + time.Second))[cheat.Fingerprint()] {
		t.Fatal("BadCompute outlived its period")
	}
}

// TestProofEndpoint: POST /unfed/dir/v1/proof re-executes with the model
// file of the catalog entry: 200 "fraud FP" for a true proof, 400 for an
// honest commitment, a replay or garbage, and 503 while another proof runs.
func TestProofEndpoint(t *testing.T) {
	path := modeltest.Path(t, "stories260K.gguf")
	sh, err := model.Load(path, model.ShardOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Close()
	a := &Authority{cfg: AuthorityConfig{Now: time.Now, Models: []ModelConfig{{ID: "stories260K", File: path}}},
		log: slog.New(slog.DiscardHandler), descs: map[keys.Fingerprint]*Descriptor{}}
	id, err := keys.NewIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	a.descs[id.Fingerprint()] = &Descriptor{Identity: id.Public, Roles: []Role{RoleCompute},
		Compute: &ComputeInfo{Model: "stories260K", Layers: LayerRange{First: 0, Last: sh.Last()}}}
	post := func(b []byte) (int, string) {
		w := httptest.NewRecorder()
		a.handleProofPost(w, httptest.NewRequest("POST", PathProof, bytes.NewReader(b)))
		return w.Code, w.Body.String()
	}
	wrong := [32]byte{1}
	proof := verifytest.TokenTicket(t, sh, "stories260K", id, []int{1, 2}, &wrong)
	if code, body := post(proof); code != 200 || body != "fraud "+id.Fingerprint().String()+"\n" {
		t.Fatalf("true proof: %d %q", code, body)
	}
	for name, b := range map[string][]byte{"replay": proof, "honest": verifytest.TokenTicket(t, sh, "stories260K", id, []int{1, 2}, nil), "garbage": {1, 2, 3}} {
		if code, _ := post(b); code != 400 {
			t.Fatalf("%s: %d", name, code)
		}
	}
	a.fraud.busy.Lock()
	code, _ := post(verifytest.TokenTicket(t, sh, "stories260K", id, []int{3}, &wrong))
	a.fraud.busy.Unlock()
	if code != 503 {
		t.Fatalf("while busy: %d", code)
	}
}

// TestJudgePartyProof: a party's proof (spec/11 §7.4) whose re-execution
// differs from its commitment makes the authority vote BadCompute on that
// party; an honest party's ticket (windowed: its step 0 as state rows), a
// replay, a party not listed as an MPC party of that stage (a compute relay
// of it included) and a forged signature are rejected, the last three without re-execution. Through the
// endpoint, with the stage loaded from the catalog's model file.
func TestJudgePartyProof(t *testing.T) {
	path := modeltest.Path(t, "stories260K.gguf")
	s := verifytest.NewSession(t, path, "stories260K", [][2]int{{0, 2}, {2, 5}}, 11)
	s.Miscompute = func(stage int, role mpc.Role, step int, y []uint64) {
		if stage == 1 && role == mpc.RoleA && step == 0 {
			y[len(y)-1] += 77 // the last row: the one MPC_OUTPUT carries
		}
	}
	s.Step(t, []int{1, 403, 407})
	s.Step(t, []int{29})
	a := &Authority{cfg: AuthorityConfig{Now: time.Now, Models: []ModelConfig{{ID: "stories260K", File: path}}},
		log: slog.New(slog.DiscardHandler), descs: map[keys.Fingerprint]*Descriptor{}}
	list := func(stage int, role mpc.Role, asCompute bool) keys.Fingerprint {
		st := s.Stages[stage]
		id := st.Parties[role].Identity()
		d := &Descriptor{Identity: id[:], Roles: []Role{RoleMPC}, MPC: &MPCInfo{Model: "stories260K", Layers: LayerRange{First: st.First, Last: st.Last}}}
		if asCompute {
			d = &Descriptor{Identity: id[:], Roles: []Role{RoleCompute}, Compute: &ComputeInfo{Model: "stories260K", Layers: LayerRange{First: st.First, Last: st.Last}}}
		}
		fp := keys.FingerprintOf(id[:])
		a.descs[fp] = d
		return fp
	}
	cheat, _ := list(1, mpc.RoleA, false), list(0, mpc.RoleB, false)
	list(1, mpc.RoleB, true)
	post := func(b []byte) (int, string) {
		w := httptest.NewRecorder()
		a.handleProofPost(w, httptest.NewRequest("POST", PathProof, bytes.NewReader(b)))
		return w.Code, w.Body.String()
	}
	proof := s.Ticket(1, mpc.RoleA).Append(nil)
	if code, body := post(proof); code != 200 || body != "fraud "+cheat.String()+"\n" {
		t.Fatalf("true proof: %d %q", code, body)
	}
	if !a.fraud.badSet(time.Now())[cheat] || len(a.fraud.badSet(time.Now())) != 1 {
		t.Fatal("the cheating party is not (alone) voted BadCompute")
	}
	forged := s.Ticket(0, mpc.RoleB)
	forged.Commitment.Sig[1] ^= 1
	for name, b := range map[string][]byte{
		"honest": s.Window(0, mpc.RoleB, 1, 1).Append(nil), "replay": proof,
		"listed as compute": s.Ticket(1, mpc.RoleB).Append(nil), "unlisted": s.Ticket(0, mpc.RoleA).Append(nil),
		"forged": forged.Append(nil),
	} {
		if code, body := post(b); code != 400 {
			t.Errorf("%s: %d %s", name, code, body)
		}
	}
	if len(a.fraud.judged) != 2 {
		t.Fatalf("%d proofs re-executed, want the cheater's and the honest one", len(a.fraud.judged))
	}
}
