package testnet

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/unfed/unfed/compute/tinymodels"
)

// TestTestnetCommandUpStatusDown runs `unfed testnet up`, `status` and
// `down` as a user would: up returns with the network running in the
// background and prints the client line; down leaves nothing running.
func TestTestnetCommandUpStatusDown(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "net")
	unfed := filepath.Join(binDir, "unfed")
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(unfed, append([]string{"testnet"}, args...)...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("unfed testnet %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	model := modelPath(t)
	out := run("up", "--dir", dir, "--model", model, "--interval", "3s")
	t.Cleanup(func() {
		if n, err := Load(dir); err == nil {
			StopRecorded(n, 5*time.Second, io.Discard)
		}
	})
	if !strings.HasPrefix(out, "client api=http://127.0.0.1:") || !strings.Contains(out, " socks=127.0.0.1:") {
		t.Fatalf("up printed %q", out)
	}
	if st := run("status", "--dir", dir); !strings.Contains(st, "16 of 16 nodes up") {
		t.Fatalf("status:\n%s", st)
	}
	// The catalog names the model: /v1/models shows the name, the HTTP API
	// takes it for the id, and "<name>.unfed" over SOCKS selects it.
	api := strings.Fields(strings.TrimPrefix(strings.SplitN(out, "\n", 2)[0], "client api="))[0]
	socks := strings.TrimPrefix(strings.Fields(strings.SplitN(out, "\n", 2)[0])[2], "socks=")
	curl := func(args ...string) string {
		t.Helper()
		b, err := exec.Command("curl", append([]string{"-sS", "--max-time", "120"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("curl %v: %v\n%s", args, err, b)
		}
		return string(b)
	}
	if models := curl(api + "/v1/models"); !strings.Contains(models, `"name":"stories260K"`) {
		t.Fatalf("/v1/models lacks the name:\n%s", models)
	}
	want := localGreedy(t, model, e2ePrompt, 4)
	for _, c := range [][]string{
		{"-d", `{"model":"stories260K","prompt":"` + e2ePrompt + `","max_tokens":4,"temperature":0}`, api + "/v1/completions"},
		{"--socks5-hostname", socks, "-d", `{"prompt":"` + e2ePrompt + `","max_tokens":4,"temperature":0}`, "http://stories260k.unfed/v1/completions"},
	} {
		var cr struct{ Choices []struct{ Text string } }
		body := curl(c...)
		if err := json.Unmarshal([]byte(body), &cr); err != nil || len(cr.Choices) != 1 || cr.Choices[0].Text != want {
			t.Fatalf("curl %v: %s, want text %q", c, body, want)
		}
	}
	// The running network's consensus verifies against its own authorities.
	show, err := exec.Command(unfed, "consensus", "show", "--verify", "--testnet", dir).CombinedOutput()
	if err != nil || !strings.Contains(string(show), "verified: signed by at least 2 of 3") {
		t.Fatalf("consensus show --verify --testnet: %v\n%s", err, show)
	}
	run("down", "--dir", dir)
	// status exits non-zero when any node is down.
	st, err := exec.Command(unfed, "testnet", "status", "--dir", dir).Output()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(st), "0 of 16 nodes up") {
		t.Fatalf("status after down: %v\n%s", err, st)
	}
}

// TestStopRecordedParallel: `testnet down` signals every node at once. Each
// fake node here exits on SIGTERM only once every node has been signalled,
// so a one-at-a-time stop would have to SIGKILL them and report it.
func TestStopRecordedParallel(t *testing.T) {
	const nodes = 4
	barrier := t.TempDir()
	n := &Network{}
	var waits []chan error
	for i := range nodes {
		script := fmt.Sprintf(`trap 'touch %[1]s/%[2]d; while [ $(ls %[1]s | wc -l) -lt %[3]d ]; do sleep 0.05; done; exit 0' TERM; echo ready; while true; do sleep 0.05; done`, barrier, i, nodes)
		cmd, done := startScript(t, script)
		waits = append(waits, done)
		n.Nodes = append(n.Nodes, &Node{Name: fmt.Sprintf("n%d", i), Pid: cmd.Process.Pid})
	}
	var report strings.Builder
	if err := StopRecorded(n, 20*time.Second, &report); err != nil {
		t.Fatalf("%v\n%s", err, report.String())
	}
	for i, done := range waits {
		if err := <-done; err != nil {
			t.Errorf("node %d: %v (want a clean exit)", i, err)
		}
	}
	if strings.Count(report.String(), "stopped ") != nodes {
		t.Fatalf("report:\n%s", report.String())
	}
}

// startScript starts a bash script in a process group of its own, waits
// for its first line ("ready"), and reaps it when it exits (so Alive sees
// the exit) into the channel returned; the group is killed at cleanup.
func startScript(t *testing.T, script string) (*exec.Cmd, chan error) {
	t.Helper()
	cmd := exec.Command("bash", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	if _, err := bufio.NewReader(out).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	return cmd, done
}

// TestStopRecordedStuck: a node that ignores SIGTERM is killed after the
// timeout and reported in a StuckError, with what it was doing then (its
// threads' states and the tail of its stderr.log).
func TestStopRecordedStuck(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "stderr.log"), []byte("first\nlast words before SIGTERM\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd, done := startScript(t, `trap '' TERM; echo ready; while true; do sleep 0.05; done`)
	n := &Network{Nodes: []*Node{{Name: "stubborn", Kind: "tor", Dir: dir, Pid: cmd.Process.Pid}}}
	var report strings.Builder
	err := StopRecorded(n, 500*time.Millisecond, &report)
	var stuck *StuckError
	if !errors.As(err, &stuck) || len(stuck.Nodes) != 1 || stuck.Nodes[0].Name != "stubborn" {
		t.Fatalf("StopRecorded: %v, want a StuckError naming the node", err)
	}
	if !strings.Contains(err.Error(), "stubborn") || !strings.Contains(report.String(), "killed stubborn") {
		t.Fatalf("error %q, report %q", err, report.String())
	}
	diag := stuck.Diag[0]
	if !strings.Contains(diag, "thread ") || !strings.Contains(diag, "bash") || !strings.Contains(diag, "last words before SIGTERM") {
		t.Fatalf("diagnostics lack the threads or the log's tail:\n%s", diag)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("the stuck node exited cleanly; it should have been killed")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stuck node is still running after StopRecorded")
	}
	if ProcessState(cmd.Process.Pid) != "" {
		t.Fatal("ProcessState describes a process that has exited and been reaped")
	}
}

// TestResolveModelOffline: with no --model and no UNFED_MODEL_DIR, the
// testnet runs the stories260K copy built into the binary, checked against
// its SHA-256, with no network; an altered copy in UNFED_MODEL_DIR is refused.
func TestResolveModelOffline(t *testing.T) {
	t.Setenv("UNFED_MODEL_DIR", "")
	dir := filepath.Join(t.TempDir(), "models")
	p, err := ResolveModel(context.Background(), "", dir, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if p != filepath.Join(dir, "stories260K.gguf") {
		t.Fatalf("resolved %s", p)
	}
	if err := tinymodels.Verify(p); err != nil {
		t.Fatal(err)
	}
	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, "stories260K.gguf"), []byte("GGUF but not the model"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("UNFED_MODEL_DIR", bad)
	if _, err := ResolveModel(context.Background(), "", dir, io.Discard); err == nil || !strings.Contains(err.Error(), "SHA-256 mismatch") {
		t.Fatalf("altered model in UNFED_MODEL_DIR: %v", err)
	}
}
