package testnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// binFor maps a node kind to its program.
func binFor(kind string) string {
	switch kind {
	case "dirauth":
		return "dirauth"
	case "client":
		return "unfed-client"
	}
	return "unfed-relay"
}

// wantListeners are the listeners a node of each kind must announce before
// it counts as started.
func wantListeners(node *Node) []string {
	switch node.Kind {
	case "dirauth":
		return []string{"dir", "metrics"}
	case "client":
		return []string{"api", "socks", "metrics"}
	}
	if node.Role == "bridge" {
		return []string{"or-obfs4", "metrics"} // a bridge listens on obfs4 only
	}
	if node.Onion {
		return []string{"or-onion", "metrics"}
	}
	return []string{"or", "metrics"}
}

// Start starts every node of a generated network in order (authorities,
// relays, client) and waits until the client reports ready: a verified
// consensus in which the model is servable. Detached processes outlive the
// caller (for `unfed testnet up`). progress receives one line per step.
func (n *Network) Start(ctx context.Context, detached bool, progress io.Writer) error {
	if n.Tor != nil {
		took, err := n.startTor(ctx, detached)
		if err != nil {
			return err
		}
		n.Tor.StartTime = took
		fmt.Fprintf(progress, "testnet: private Tor network bootstrapped in %s\n", took.Round(100*time.Millisecond))
	}
	for _, kind := range []string{"dirauth", "relay", "client"} {
		for _, node := range n.Nodes {
			if node.Kind != kind {
				continue
			}
			if err := n.startNode(ctx, node, detached); err != nil {
				return err
			}
		}
		fmt.Fprintf(progress, "testnet: %s nodes started\n", kind)
	}
	if err := n.Save(); err != nil {
		return err
	}
	if c := n.node("client"); c != nil {
		if err := waitHealthy(ctx, c); err != nil {
			return err
		}
		fmt.Fprintf(progress, "testnet: client ready\n")
	}
	return n.Save()
}

func (n *Network) startNode(ctx context.Context, node *Node, detached bool) error {
	if node.Kind == "client" {
		if err := n.addBridgeLines(node); err != nil {
			return err
		}
	}
	start := StartProc
	if detached {
		start = StartDetached
	}
	bin := binFor(node.Kind)
	if node.Binary != "" {
		bin = node.Binary
	}
	env := append(slices.Clip(n.Spec.Env), node.Env...)
	p, err := start(node.Name, filepath.Join(n.Spec.BinDir, bin), []string{"--config", node.Config}, node.Dir, env)
	if err != nil {
		return err
	}
	n.mu.Lock()
	node.Proc = p
	n.mu.Unlock()
	wait := 60 * time.Second
	if n.Tor != nil {
		// A node's own tor bootstraps, and an onion relay's service is
		// published, before it announces its listeners.
		wait = 150 * time.Second
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	ls, err := p.WaitListening(wctx, wantListeners(node)...)
	if err != nil {
		return err
	}
	n.mu.Lock()
	node.Listeners = ls
	node.Pid = p.Pid()
	n.mu.Unlock()
	return aimForwarder(node)
}

// waitHealthy polls a node's /healthz until it answers 200.
func waitHealthy(ctx context.Context, node *Node) error {
	ctx, cancel := context.WithTimeout(ctx, 120*time.Second)
	defer cancel()
	url := "http://" + node.Listeners["metrics"] + "/healthz"
	var last string
	for {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, b)
		} else {
			last = err.Error()
		}
		if node.Proc != nil && node.Proc.Exited() {
			return fmt.Errorf("testnet: %s exited while waiting to be ready; see %s", node.Name, filepath.Join(node.Dir, "stderr.log"))
		}
		if !waitCtx(ctx, 250*time.Millisecond) {
			return fmt.Errorf("testnet: %s not ready after 120s (last /healthz: %s)", node.Name, last)
		}
	}
}

// ClientAddrs returns the client's API URL and SOCKS address.
func (n *Network) ClientAddrs() (api, socks string, err error) {
	c := n.node("client")
	if c == nil || c.Listeners["api"] == "" {
		return "", "", errors.New("testnet: no running client")
	}
	return "http://" + c.Listeners["api"], c.Listeners["socks"], nil
}

// Node returns the node with the given name, or nil.
func (n *Network) Node(name string) *Node { return n.node(name) }

// Kill kills a node at once (kill -9).
func (n *Network) Kill(name string) error {
	node := n.node(name)
	if node == nil || node.Proc == nil {
		return fmt.Errorf("testnet: no running node %q", name)
	}
	node.Killed = true
	node.Proc.Kill()
	return nil
}

// Restart starts a stopped or killed node again with the same directory.
func (n *Network) Restart(ctx context.Context, name string) error {
	node := n.node(name)
	if node == nil {
		return fmt.Errorf("testnet: no node %q", name)
	}
	if node.Proc != nil && !node.Proc.Exited() {
		return fmt.Errorf("testnet: %s is still running", name)
	}
	node.Killed = false
	return n.startNode(ctx, node, false)
}

// addBridgeLines gives the client the bridge lines its bridge relays
// printed (`obfs4 ADDR FINGERPRINT cert=… iat-mode=N`, spec/09 §9).
func (n *Network) addBridgeLines(client *Node) error {
	var lines []string
	for _, node := range n.Nodes {
		if node.Role != "bridge" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(node.Dir, "stdout.log"))
		if err != nil {
			return fmt.Errorf("testnet: %w", err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "obfs4 ") {
				lines = append(lines, l)
			}
		}
	}
	if len(lines) == 0 {
		return nil
	}
	raw, err := os.ReadFile(client.Config)
	if err != nil {
		return fmt.Errorf("testnet: %w", err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		return fmt.Errorf("testnet: %w", err)
	}
	cfg["bridges"] = lines
	return writeConfig(client.Config, cfg)
}
