package testnet

// A private Tor network on a loopback address of its own (`unfed testnet up --tor`), after
// chutney's torrc templates: directory authorities whose keys tor-gencert
// makes, relays that are all exits to 127.0.0.0/8, guards and HSDirs, the
// TestingTorNetwork settings and chutney's fastest stable voting schedule.
// Its tor processes are nodes of kind "tor" of the Network, started before
// every UNFED node and stopped after them.
//
// What UNFED nodes get (spec/09-relay-operation.md §12): TorrcFile, the
// torrc lines a tor needs to use this network (DirAuthority lines and
// TestingTorNetwork), for the client's and onion relays' own tors started by
// bine; and SOCKS, the SOCKS port of one relay's tor, through which relays
// and authorities dial onion addresses without a tor of their own.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/unfed/unfed/transports/onion"
)

// TorNet is the generated private Tor network.
type TorNet struct {
	// TorrcFile holds the lines a tor needs to join the network.
	TorrcFile string
	// SOCKS is a SOCKS5 port of one of the network's relays.
	SOCKS string
	// StartTime is how long the network took to bootstrap.
	StartTime time.Duration
}

// Tor network size: about chutney's "basic" network.
const (
	torAuthorities = 3
	torRelays      = 5
)

// torNode is what generateTor writes for one tor process.
type torNode struct {
	node            *Node
	orPort, dirPort int
	fingerprint     string // relay identity (RSA), hex
	v3ident         string // authority signing identity, hex
	socksAdr        string
	host            string // the network's loopback address
}

// generateTor writes keys and torrc files for the private Tor network under
// dir/tor and returns it with its nodes.
func generateTor(dir string) (*TorNet, []*Node, error) {
	torBin, err := onion.FindTor("")
	if err != nil {
		return nil, nil, fmt.Errorf("testnet: --tor needs Debian's tor package (make deps installs it): %w", err)
	}
	gencert, err := exec.LookPath("tor-gencert")
	if err != nil {
		return nil, nil, fmt.Errorf("testnet: --tor needs tor-gencert (Debian's tor package): %w", err)
	}
	root := filepath.Join(dir, "tor")
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, nil, fmt.Errorf("testnet: %w", err)
	}
	var nodes []*torNode
	// Every tor of the network listens on one address of 127.0.0.0/8 of
	// its own, as the authorities do (authorityHost): its ports are chosen
	// before the tors start, and on 127.0.0.1 another program (another
	// test's tor, an ephemeral listener) took one in between once, and
	// that tor could not bind it.
	host := authorityHost()
	ports := &portPicker{host: host}
	for i := 0; i < torAuthorities+torRelays; i++ {
		name := fmt.Sprintf("tor-auth%d", i+1)
		role := "tor-authority"
		if i >= torAuthorities {
			name, role = fmt.Sprintf("tor-relay%d", i-torAuthorities+1), "tor-relay"
		}
		nd := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Join(nd, "data", "keys"), 0o700); err != nil {
			return nil, nil, fmt.Errorf("testnet: %w", err)
		}
		tn := &torNode{node: &Node{Name: name, Kind: "tor", Role: role, Dir: nd, Config: filepath.Join(nd, "torrc")}, host: host}
		if tn.orPort, err = ports.pick(); err != nil {
			return nil, nil, err
		}
		if tn.dirPort, err = ports.pick(); err != nil {
			return nil, nil, err
		}
		if role == "tor-authority" {
			if tn.v3ident, err = torGencert(gencert, filepath.Join(nd, "data", "keys"), host, tn.dirPort); err != nil {
				return nil, nil, err
			}
		}
		if tn.fingerprint, err = torFingerprint(torBin, filepath.Join(nd, "data"), name, tn.orPort); err != nil {
			return nil, nil, err
		}
		tn.node.Fingerprint = tn.fingerprint
		nodes = append(nodes, tn)
	}
	last := nodes[len(nodes)-1]
	port, err := ports.pick()
	if err != nil {
		return nil, nil, err
	}
	last.socksAdr = net.JoinHostPort(host, strconv.Itoa(port))

	var dirAuths bytes.Buffer
	for _, tn := range nodes[:torAuthorities] {
		fmt.Fprintf(&dirAuths, "DirAuthority %s orport=%d no-v2 v3ident=%s %s:%d %s\n",
			torNick(tn.node.Name), tn.orPort, tn.v3ident, host, tn.dirPort, tn.fingerprint)
	}
	tnet := &TorNet{TorrcFile: filepath.Join(root, "client.torrc"), SOCKS: last.socksAdr}
	client := "# The private Tor network of this testnet (written by unfed testnet).\nTestingTorNetwork 1\n" +
		"PathsNeededToBuildCircuits 0.67\n" + virtualAddrs + dirAuths.String()
	if err := os.WriteFile(tnet.TorrcFile, []byte(client), 0o600); err != nil {
		return nil, nil, fmt.Errorf("testnet: %w", err)
	}
	var out []*Node
	for _, tn := range nodes {
		if err := os.WriteFile(tn.node.Config, []byte(torrc(tn, dirAuths.String())), 0o600); err != nil {
			return nil, nil, fmt.Errorf("testnet: %w", err)
		}
		out = append(out, tn.node)
	}
	return tnet, out, nil
}

// virtualAddrs moves tor's automapped addresses out of 127.192.0.0/10, its
// default, where a tor refuses connections it has no mapping for: the
// authorities of a testnet listen on a random address of 127.0.0.0/8.
const virtualAddrs = "VirtualAddrNetworkIPv4 10.192.0.0/10\n"

// torrc renders one node's torrc (chutney's common.i, authority.i and
// relay templates, trimmed to what this network uses). Relays accept every
// exit: clients choose exits by the microdescriptors' policy summaries,
// which leave out rules for address ranges, so "accept 127.0.0.0/8:*"
// would read as "reject everything". Every port is bound to the network's
// loopback address, so only processes of this machine can use the network.
func torrc(tn *torNode, dirAuths string) string {
	var b strings.Builder
	data := filepath.Join(tn.node.Dir, "data")
	fmt.Fprintf(&b, `TestingTorNetwork 1
AssumeReachable 1
PathsNeededToBuildCircuits 0.67
TestingDirAuthVoteExit *
TestingDirAuthVoteHSDir *
TestingDirAuthVoteGuard *
TestingMinExitFlagThreshold 0
V3AuthNIntervalsValid 2
DataDirectory %s
Nickname %s
ShutdownWaitLength 0
Log notice file %s
SafeLogging 0
LogTimeGranularity 1
Address %[6]s
ORPort %[6]s:%[4]d
DirPort %[6]s:%[5]d
ContactInfo %[7]s@unfed.test
TestingServerDownloadInitialDelay 0
TestingServerConsensusDownloadInitialDelay 0
`, data, torNick(tn.node.Name), filepath.Join(tn.node.Dir, "notice.log"), tn.orPort, tn.dirPort, tn.host, tn.node.Name)
	b.WriteString(virtualAddrs)
	b.WriteString(dirAuths)
	if tn.v3ident != "" {
		b.WriteString(`AuthoritativeDirectory 1
V3AuthoritativeDirectory 1
TestingV3AuthInitialVotingInterval 10
TestingV3AuthInitialVoteDelay 2
TestingV3AuthInitialDistDelay 2
V3AuthVotingInterval 10
V3AuthVoteDelay 2
V3AuthDistDelay 2
ExitPolicy reject *:*
SocksPort 0
`)
		return b.String()
	}
	b.WriteString(`ExitRelay 1
ExitPolicy accept *:*
ExitPolicyRejectPrivate 0
ExitPolicyRejectLocalInterfaces 0
`)
	if tn.socksAdr != "" {
		fmt.Fprintf(&b, "SocksPort %s ExtendedErrors\n", tn.socksAdr)
	} else {
		b.WriteString("SocksPort 0\n")
	}
	return b.String()
}

// torGencert makes an authority's identity and signing keys and
// certificate (chutney does the same) and returns its v3 identity.
func torGencert(bin, keyDir, host string, dirPort int) (string, error) {
	cmd := exec.Command(bin, "--create-identity-key", "-m", "12", "-a", net.JoinHostPort(host, strconv.Itoa(dirPort)),
		"-i", filepath.Join(keyDir, "authority_identity_key"), "-s", filepath.Join(keyDir, "authority_signing_key"),
		"-c", filepath.Join(keyDir, "authority_certificate"), "--passphrase-fd", "0")
	cmd.Stdin = strings.NewReader("\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("testnet: tor-gencert: %w: %s", err, out)
	}
	f, err := os.Open(filepath.Join(keyDir, "authority_certificate"))
	if err != nil {
		return "", fmt.Errorf("testnet: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fp, ok := strings.CutPrefix(sc.Text(), "fingerprint "); ok {
			return strings.TrimSpace(fp), nil
		}
	}
	return "", fmt.Errorf("testnet: no fingerprint in %s", f.Name())
}

// torFingerprint makes a relay's identity key and returns its fingerprint.
func torFingerprint(bin, dataDir, nick string, orPort int) (string, error) {
	cmd := exec.Command(bin, "--list-fingerprint", "--DataDirectory", dataDir, "--ORPort", strconv.Itoa(orPort),
		"--Nickname", torNick(nick), "--ignore-missing-torrc", "-f", os.DevNull, "--hush")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("testnet: tor --list-fingerprint: %w: %s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dataDir, "fingerprint"))
	if err != nil {
		return "", fmt.Errorf("testnet: %w", err)
	}
	f := strings.Fields(string(b))
	if len(f) != 2 || len(f[1]) != 40 {
		return "", fmt.Errorf("testnet: %s: unexpected %q", filepath.Join(dataDir, "fingerprint"), b)
	}
	return f[1], nil
}

// startTor starts the network's tor processes and waits until the tor with
// the SOCKS port has bootstrapped: the authorities have voted a consensus
// with enough relays for circuits. It returns how long that took.
func (n *Network) startTor(ctx context.Context, detached bool) (time.Duration, error) {
	start := time.Now()
	torBin, err := onion.FindTor("")
	if err != nil {
		return 0, fmt.Errorf("testnet: %w", err)
	}
	startFn := StartProc
	if detached {
		startFn = StartDetached
	}
	var socksNode *Node
	for _, node := range n.Nodes {
		if node.Kind != "tor" {
			continue
		}
		p, err := startFn(node.Name, torBin, []string{"-f", node.Config, "--hush"}, node.Dir, nil)
		if err != nil {
			return 0, err
		}
		n.mu.Lock()
		node.Proc, node.Pid = p, p.Pid()
		n.mu.Unlock()
		socksNode = node
	}
	if socksNode == nil {
		return 0, nil
	}
	ctx, cancel := context.WithTimeout(ctx, TorStartTimeout)
	defer cancel()
	logPath := filepath.Join(socksNode.Dir, "notice.log")
	for {
		b, _ := os.ReadFile(logPath)
		if bytes.Contains(b, []byte("Bootstrapped 100%")) {
			return time.Since(start), nil
		}
		for _, node := range n.Nodes {
			if node.Kind == "tor" && node.Proc != nil && node.Proc.Exited() {
				return 0, fmt.Errorf("testnet: %s exited; see %s", node.Name, filepath.Join(node.Dir, "notice.log"))
			}
		}
		if !waitCtx(ctx, 250*time.Millisecond) {
			return 0, fmt.Errorf("testnet: the private Tor network did not bootstrap within %s; see %s", TorStartTimeout, logPath)
		}
	}
}

// torNick is a node name as a tor nickname: [A-Za-z0-9]{1,19}.
func torNick(name string) string { return strings.ReplaceAll(name, "-", "") }

// configure adds the tor section to an UNFED node's configuration: the
// client and an onion relay start their own tor (bine) on this network;
// every other relay and the authorities dial onion addresses through the
// network's SOCKS port.
func (t *TorNet) configure(node *Node, cfg map[string]any, onionRelay bool, interval time.Duration) {
	switch {
	case node.Kind == "client":
		cfg["tor"] = map[string]any{"enabled": true, "torrc": t.TorrcFile, "bootstrap_timeout": "90s"}
	case onionRelay:
		cfg["tor"] = map[string]any{"enabled": true, "torrc": t.TorrcFile, "bootstrap_timeout": "90s"}
		cfg["or"] = map[string]any{"tcp": "", "onion": ":9001"} // onion only
	default:
		cfg["tor"] = map[string]any{"enabled": true, "socks": t.SOCKS}
	}
	if node.Kind == "dirauth" {
		// Probes, then measurements, each bounded by probe_timeout, run at
		// the start of the vote delay and must end by its middle, when
		// votes are sent: probe_timeout is at most a quarter of it. A
		// probe through Tor to an onion service needs seconds, not the
		// fraction of a second of a plain one, hence half the interval.
		vd := (interval / 2).Truncate(time.Second)
		cfg["vote_delay"] = vd.String()
		cfg["dist_delay"] = max(time.Second, (interval / 8).Truncate(time.Second)).String()
		cfg["probe_timeout"] = (vd / 4).String()
	}
}

// TorStartTimeout bounds the private Tor network's start.
const TorStartTimeout = 150 * time.Second
