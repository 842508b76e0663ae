package testnet

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/transports/onion"
	"github.com/unfed/unfed/transports/onionaddr"
)

// The Tor acceptance tests share one network (started by the first of them,
// stopped by TestMain): a private Tor network of 3 authorities and 5 relays,
// and an anonymous-mode UNFED network with one guard and two shards of one
// relay each, the second of which (s2-1) listens only as an onion service.
// Every circuit is therefore client →(Tor)→ guard → s1-1 →(Tor)→ s2-1.
var torShared struct {
	mu    sync.Mutex
	n     *Network
	err   error
	start time.Duration // UNFED network start, after Tor's
}

func torNetwork(t *testing.T) *Network {
	t.Helper()
	torShared.mu.Lock()
	defer torShared.mu.Unlock()
	if torShared.n == nil && torShared.err == nil {
		dir, err := os.MkdirTemp("", "unfed-tor-")
		if err != nil {
			t.Fatal(err)
		}
		n, err := Generate(Spec{Dir: dir, BinDir: binDir, Model: modelPath(t), Client: true, Tor: true, OnionRelay: true,
			Mode: "anonymous", Guards: 1, Shards: 2, Replicas: 1, Stages: 1, Parties: 2, Dealers: 1})
		if err != nil {
			torShared.err = err
		} else {
			torShared.n = n
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			start := time.Now()
			torShared.err = n.Start(ctx, false, io.Discard)
			torShared.start = time.Since(start) - n.Tor.StartTime
			cancel()
		}
	}
	if torShared.err != nil {
		if torShared.n != nil {
			dumpLogs(t, torShared.n)
		}
		t.Fatalf("private Tor testnet: %v", torShared.err)
	}
	t.Logf("private Tor network bootstrapped in %v; UNFED network ready %v later", torShared.n.Tor.StartTime, torShared.start)
	return torShared.n
}

// stopTorNetwork stops the shared network the way `unfed testnet down`
// does (StopRecorded, from the state file), reporting unclean exits; its
// directory is kept for inspection unless every test passed.
func stopTorNetwork(passed bool) error {
	torShared.mu.Lock()
	defer torShared.mu.Unlock()
	if torShared.n == nil {
		return nil
	}
	n := torShared.n
	err := n.Save() // the state `testnet down` reads, with restarted pids
	if saved, lerr := Load(n.Spec.Dir); lerr != nil {
		err = errors.Join(lerr, n.StopAll(15*time.Second))
	} else {
		// 30 s, not `testnet down`'s 15: at the end of a CI run the two
		// cores are shared with other packages' tests.
		stopErr := StopRecorded(saved, 30*time.Second, io.Discard)
		// A tor that outlives SIGTERM is killed like any node, and so is
		// stopped; but its exit is not UNFED's behaviour under test (tor
		// relays here exit within a second of SIGTERM, yet twice in CI
		// one did not within 15 and 30 s), so it is reported with what
		// it was doing, not failed on. Any UNFED process that needs
		// SIGKILL fails the run.
		torStuck := map[string]bool{}
		var stuck *StuckError
		if errors.As(stopErr, &stuck) {
			var ours []string
			for i, node := range stuck.Nodes {
				fmt.Fprintf(os.Stderr, "private Tor testnet: %s (%s) did not exit within %s of SIGTERM; killed. It was:\n%s", node.Name, node.Role, stuck.Timeout, stuck.Diag[i])
				if node.Kind == "tor" {
					torStuck[node.Name] = true
				} else {
					ours = append(ours, node.Name)
				}
			}
			stopErr = nil
			if len(ours) > 0 {
				stopErr = fmt.Errorf("%w: killed after %s without a clean exit: %s", ErrUncleanExit, stuck.Timeout, strings.Join(ours, ", "))
			}
		}
		err = errors.Join(err, stopErr)
		for _, node := range n.Nodes {
			if node.Proc == nil || node.Killed || torStuck[node.Name] {
				continue
			}
			select {
			case <-node.Proc.done:
				if node.Proc.exitErr != nil {
					err = errors.Join(err, fmt.Errorf("%w: %s: %v", ErrUncleanExit, node.Name, node.Proc.exitErr))
				}
			case <-time.After(5 * time.Second):
				node.Proc.Kill()
				err = errors.Join(err, fmt.Errorf("%s still running after testnet down", node.Name))
			}
		}
	}
	// Every tor is gone too: the network's own and those the client and
	// the onion relay started through bine (their command lines name
	// directories under the network's).
	deadline := time.Now().Add(10 * time.Second)
	left := processesUnder(n.Spec.Dir)
	for len(left) > 0 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		left = processesUnder(n.Spec.Dir)
	}
	if len(left) > 0 {
		err = errors.Join(err, fmt.Errorf("processes still running after the network stopped: %v", left))
	}
	if err == nil && passed {
		os.RemoveAll(torShared.n.Spec.Dir)
	} else {
		fmt.Fprintln(os.Stderr, "private Tor testnet kept in", torShared.n.Spec.Dir)
	}
	torShared.n = nil
	return err
}

// processesUnder lists the processes whose command line mentions dir.
func processesUnder(dir string) []string {
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), dir) {
			out = append(out, e.Name()+": "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return out
}

// TestClientOverTor: a completion through client → private Tor network →
// guard → the rest equals local greedy generation, and the guard's view
// (its established connections, as the kernel lists them) shows a Tor
// exit's address while the client holds no connection to the guard. The
// same check on a second client without tor, on the same network, fails:
// the check is not vacuous.
func TestClientOverTor(t *testing.T) {
	n := torNetwork(t)
	api, _, _ := n.ClientAddrs()
	want := localGreedy(t, n.Spec.Model, e2ePrompt, 24)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	torTTFT, torTok := timedCompletion(t, ctx, api, "anonymous", want, 24)

	guard := n.Node("guard1")
	client := n.Node("client")
	var tor []*Node
	for _, node := range n.Nodes {
		if node.Role == "tor-relay" {
			tor = append(tor, node)
		}
	}
	if err := viaTor(guard, client, tor); err != nil {
		t.Fatal(err)
	}

	// The mutation: the same client configuration without tor.
	direct := startDirectClient(t, n, client)
	dapi := "http://" + direct.Listener("api")
	dTTFT, dTok := timedCompletion(t, ctx, dapi, "anonymous", want, 24)
	err := viaTor(guard, &Node{Name: "direct-client", Proc: direct}, tor)
	if err == nil || !strings.Contains(err.Error(), "connected to the guard") {
		t.Fatalf("the check passed for a client without tor (err %v): it cannot tell", err)
	}
	t.Logf("figures (anonymous circuit, stories260K, 24 tokens): over Tor TTFT %v, %v/token; direct TTFT %v, %v/token", torTTFT, torTok, dTTFT, dTok)
}

// timedCompletion streams a greedy completion, checks it equals want, and
// returns the time to first text and the mean time per later token.
func timedCompletion(t *testing.T, ctx context.Context, api, mode, want string, tokens int) (time.Duration, time.Duration) {
	t.Helper()
	// Ask for the mode by name: a client lists only the modes it can build
	// a path for, and a completion of another mode would not test the
	// relays meant (an anonymous path through the onion relay).
	model, err := modelForMode(ctx, api, mode)
	if err != nil {
		t.Fatal(err)
	}
	var got string
	var fw *firstWrite
	// A new circuit's first build may land on a consensus period in which
	// a relay was not yet listed; a few tries are allowed.
	for i := 0; i < 3; i++ {
		fw = &firstWrite{start: time.Now()}
		if got, err = StreamCompletion(ctx, api, CompletionRequest{Model: model, Prompt: e2ePrompt, MaxTokens: tokens}, fw); err == nil {
			break
		}
		time.Sleep(2 * time.Second)
	}
	if err != nil {
		t.Fatal(err)
	}
	total := time.Since(fw.start)
	if got != want {
		t.Fatalf("greedy completion differs from local:\noverlay: %q\nlocal:   %q", got, want)
	}
	ttft := fw.first.Sub(fw.start)
	return ttft, (total - ttft) / time.Duration(tokens-1)
}

// viaTor checks what the guard sees of client. Every process here shares
// 127.0.0.1 (tor does not bind exits to OutboundBindAddressExit for local
// destinations), so the check looks behind each address the guard's link
// port is connected to and finds the process holding the other end: at
// least one must be a relay of the private Tor network (an exit), and none
// may be the client.
func viaTor(guard, client *Node, tor []*Node) error {
	_, port, err := net.SplitHostPort(guard.Listeners["or"])
	if err != nil {
		return fmt.Errorf("guard OR address %q: %v", guard.Listeners["or"], err)
	}
	gconns, err := procConns(guard.Proc.Pid())
	if err != nil {
		return err
	}
	owners := map[string]string{} // local address of a socket → node name
	for _, node := range append([]*Node{client}, tor...) {
		if node.Proc == nil || node.Proc.Exited() {
			continue
		}
		cs, err := procConns(node.Proc.Pid())
		if err != nil {
			return err
		}
		for _, c := range cs {
			owners[c.local.String()] = node.Name
		}
	}
	var peers []string
	fromTor := ""
	for _, c := range gconns {
		if strconv.Itoa(c.local.Port) != port {
			continue
		}
		who := owners[c.remote.String()]
		peers = append(peers, c.remote.String()+"="+who)
		if who == client.Name {
			return fmt.Errorf("the client is connected to the guard directly (%s → %s)", c.remote, c.local)
		}
		if strings.HasPrefix(who, "tor-relay") {
			fromTor = who
		}
	}
	if fromTor == "" {
		return fmt.Errorf("no link reaches the guard from a Tor relay; its peers: %v", peers)
	}
	return nil
}

type tcpConn struct{ local, remote *net.TCPAddr }

// procConns lists the established TCP connections of a process: its socket
// inodes from /proc/PID/fd, matched in /proc/net/tcp.
func procConns(pid int) ([]tcpConn, error) {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return nil, err
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/net/tcp", pid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []tcpConn
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 10 || fs[3] != "01" || !inodes[fs[9]] { // 01: ESTABLISHED
			continue
		}
		l, err1 := parseProcAddr(fs[1])
		r, err2 := parseProcAddr(fs[2])
		if err1 != nil || err2 != nil {
			return nil, errors.Join(err1, err2)
		}
		out = append(out, tcpConn{l, r})
	}
	return out, sc.Err()
}

// parseProcAddr reads /proc/net/tcp's "0100007F:1F90" (IPv4 in host
// order, little-endian here, and the port in hex).
func parseProcAddr(s string) (*net.TCPAddr, error) {
	h, p, ok := strings.Cut(s, ":")
	b, err := hex.DecodeString(h)
	port, perr := strconv.ParseUint(p, 16, 16)
	if !ok || err != nil || perr != nil || len(b) != 4 {
		return nil, fmt.Errorf("bad /proc/net/tcp address %q", s)
	}
	return &net.TCPAddr{IP: net.IPv4(b[3], b[2], b[1], b[0]), Port: int(port)}, nil
}

// startDirectClient starts a copy of the client with tor disabled, in a
// directory of its own; it is stopped (cleanly) when the test ends.
func startDirectClient(t testing.TB, n *Network, client *Node) *Proc {
	t.Helper()
	raw, err := os.ReadFile(client.Config)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	delete(cfg, "tor")
	dir := filepath.Join(n.Spec.Dir, "direct-client")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "config.yaml")
	if err := writeConfig(path, cfg); err != nil {
		t.Fatal(err)
	}
	p, err := StartProc("direct-client", filepath.Join(binDir, "unfed-client"), []string{"--config", path}, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(15 * time.Second); err != nil {
			t.Errorf("direct client: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ls, err := p.WaitListening(ctx, "api", "metrics")
	if err != nil {
		t.Fatal(err)
	}
	if err := waitHealthy(ctx, &Node{Name: "direct-client", Dir: dir, Proc: p, Listeners: ls}); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestOnionServiceRelay: the compute relay s2-1 listens only as an onion
// service; every circuit (its shard has no other relay) reaches it through
// Tor and the completion equals local greedy generation. Its descriptor's
// onion address is what it announced, and after a restart it announces,
// and the consensus lists, the same address, and circuits work again.
func TestOnionServiceRelay(t *testing.T) {
	const restartWait = 3 * time.Minute
	n := torNetwork(t)
	api, _, _ := n.ClientAddrs()
	want := localGreedy(t, n.Spec.Model, e2ePrompt, 16)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	relay := n.Node("s2-1")
	addr := relay.Listeners["or-onion"]
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("s2-1 announced %q: %v", addr, err)
	}
	if _, err := onionaddr.Parse(host); err != nil {
		t.Fatalf("s2-1 announced %q: %v", addr, err)
	}
	if got := consensusTransports(t, ctx, n, relay.Fingerprint); !slices.Equal(got, []string{"onion " + addr}) {
		t.Fatalf("consensus lists s2-1 at %v, want only onion %s", got, addr)
	}
	timedCompletion(t, ctx, api, "anonymous", want, 16)
	circs, err := ClientCircuits(ctx, n)
	if err != nil || len(circs) == 0 {
		t.Fatalf("client circuits: %v %v", circs, err)
	}
	if !slices.ContainsFunc(circs[len(circs)-1], func(h CircuitHop) bool { return h.Fingerprint == relay.Fingerprint }) {
		t.Fatalf("the last circuit %v does not use the onion relay %s", circs[len(circs)-1], relay.Fingerprint)
	}

	if err := relay.Proc.Stop(15 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := n.Restart(ctx, "s2-1"); err != nil {
		t.Fatal(err)
	}
	if again := relay.Listeners["or-onion"]; again != addr {
		t.Fatalf("after a restart s2-1 listens at %s, not %s", again, addr)
	}
	if got := consensusTransports(t, ctx, n, relay.Fingerprint); !slices.Equal(got, []string{"onion " + addr}) {
		t.Fatalf("after a restart the consensus lists s2-1 at %v, want %s", got, addr)
	}
	// s2-1 is the only relay of the second shard, so every anonymous
	// circuit goes through it. After the restart the authorities' probes
	// reach the onion service only once Tor has given up the old
	// descriptor's introduction points and fetched the new one, which can
	// take a minute or more; until then the relay is not Running and the
	// client answers 503 (a run that logged why: s2-1 not listed, while a
	// dial through Tor succeeded again). A relay that restarts is out of
	// the consensus for a few intervals, as in Tor; the test allows
	// restartWait for it to serve again and fails after that.
	model, err := modelForMode(ctx, api, "anonymous")
	if err != nil {
		t.Fatal(err)
	}
	start, back := time.Now(), time.Now().Add(restartWait)
	for {
		got, err := completeModel(ctx, api, model, e2ePrompt, 16)
		if err == nil {
			if got != want {
				t.Fatalf("after s2-1's restart: %q, local %q", got, want)
			}
			break
		}
		if !errors.Is(err, errUnavailable) {
			t.Fatalf("after s2-1's restart: %v", err)
		}
		if time.Now().After(back) {
			t.Fatalf("the restarted onion relay did not serve again within %v: %v; consensus: %s; %s", time.Since(start).Round(time.Second), err, consensusEntry(ctx, n, relay.Fingerprint), probeOnion(ctx, n, addr))
		}
		waitCtx(ctx, 2*time.Second)
	}
	circs, err = ClientCircuits(ctx, n)
	if err != nil || len(circs) == 0 || !slices.ContainsFunc(circs[len(circs)-1], func(h CircuitHop) bool { return h.Fingerprint == relay.Fingerprint }) {
		t.Fatalf("after the restart the last circuit %v does not use the onion relay %s (%v)", circs, relay.Fingerprint, err)
	}
	t.Logf("the restarted onion relay served again %v after it was listed", time.Since(start).Round(time.Second))
}

// probeOnion dials addr through the private Tor network's SOCKS port (the
// one s1-1 uses) and says what Tor answered: its extended SOCKS replies name
// the phase of an onion dial that failed (descriptor, introduction,
// rendezvous).
func probeOnion(ctx context.Context, n *Network, addr string) string {
	if n.Tor == nil {
		return "no private Tor network"
	}
	tr, err := onion.Start(ctx, onion.Config{Enabled: true, SOCKS: n.Tor.SOCKS}, "", nil)
	if err != nil {
		return err.Error()
	}
	defer tr.Close()
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := tr.DialContext(dctx, "tcp", addr)
	if err != nil {
		return fmt.Sprintf("a dial of %s through %s now: %v", addr, n.Tor.SOCKS, err)
	}
	c.Close()
	return fmt.Sprintf("a dial of %s through %s now succeeds", addr, n.Tor.SOCKS)
}

// consensusEntry describes fp's entry in auth1's current consensus: flags,
// transports and compute range.
func consensusEntry(ctx context.Context, n *Network, fp string) string {
	body, err := getBody(ctx, "http://"+n.Node("auth1").Listeners["dir"]+"/unfed/dir/v1/consensus")
	if err != nil {
		return err.Error()
	}
	u, err := directory.ParseConsensus([]byte(body))
	if err != nil {
		return err.Error()
	}
	for _, r := range u.Unchecked().Relays {
		if r.Fingerprint.String() == fp {
			return fmt.Sprintf("%+v", r)
		}
	}
	return fp + " not listed"
}

// consensusTransports waits (bounded by ctx) until the current consensus
// lists fp as Running, and returns its transports as "name addr".
func consensusTransports(t *testing.T, ctx context.Context, n *Network, fp string) []string {
	t.Helper()
	auth := n.Node("auth1")
	var last error
	for {
		body, err := getBody(ctx, "http://"+auth.Listeners["dir"]+"/unfed/dir/v1/consensus")
		if err == nil {
			var u *directory.Unverified[directory.Consensus]
			if u, err = directory.ParseConsensus([]byte(body)); err == nil {
				for _, r := range u.Unchecked().Relays {
					if r.Fingerprint.String() == fp && r.HasFlag(directory.FlagRunning) {
						var out []string
						for _, tr := range r.Transports {
							out = append(out, tr.Name+" "+tr.Addr)
						}
						return out
					}
				}
				err = fmt.Errorf("%s not listed as Running", fp)
			}
		}
		last = err
		if !waitCtx(ctx, time.Second) {
			t.Fatalf("consensus: %v", last)
		}
	}
}

// TestClientTorMissing: a client configured to use Tor where there is none
// exits at start with an error that says what is missing and how to fix it.
func TestClientTorMissing(t *testing.T) {
	dir := t.TempDir()
	auth, err := keys.Open(filepath.Join(dir, "auth"), keys.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := map[string]any{
		"data_dir": "data", "api": map[string]any{"listen": "127.0.0.1:0"}, "socks": map[string]any{"listen": ""},
		"metrics": map[string]any{"listen": ""},
		"authorities": []map[string]any{{"name": "a", "identity": base64.StdEncoding.EncodeToString(auth.Identity().Public),
			"fingerprint": auth.Identity().Fingerprint().String(), "address": "127.0.0.1:1"}},
		"models": []map[string]any{{"path": modelPath(t)}},
		"tor":    map[string]any{"enabled": true, "tor_path": filepath.Join(dir, "no-tor-here")},
	}
	path := filepath.Join(dir, "config.yaml")
	if err := writeConfig(path, cfg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(binDir, "unfed-client"), "--config", path).CombinedOutput()
	if err == nil {
		t.Fatalf("the client ran without tor:\n%s", out)
	}
	if !strings.Contains(string(out), "tor is not installed") || !strings.Contains(string(out), "apt-get install tor") {
		t.Fatalf("unclear error:\n%s", out)
	}
}
