package testnet

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// CircuitHop is one hop of a circuit as the client's /debug/circuits reports
// it (spec/08-client-api.md §10).
type CircuitHop struct {
	Fingerprint string `json:"fingerprint"`
	Role        string `json:"role"`
	Layers      []int  `json:"layers,omitempty"`
}

// ClientCircuits asks the client which circuits it used most recently.
func ClientCircuits(ctx context.Context, n *Network) ([][]CircuitHop, error) {
	c := n.node("client")
	if c == nil {
		return nil, fmt.Errorf("testnet: no client")
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+c.Listeners["metrics"]+"/debug/circuits", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("testnet: %w", err)
	}
	defer resp.Body.Close()
	var body struct {
		Circuits []struct {
			Hops []CircuitHop `json:"hops"`
		} `json:"circuits"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil {
		return nil, fmt.Errorf("testnet: /debug/circuits: %w", err)
	}
	var out [][]CircuitHop
	for _, c := range body.Circuits {
		out = append(out, c.Hops)
	}
	return out, nil
}

// Metrics fetches a node's Prometheus metrics as name{labels} → value.
func Metrics(ctx context.Context, node *Node) (map[string]float64, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+node.Listeners["metrics"]+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("testnet: %w", err)
	}
	defer resp.Body.Close()
	m := map[string]float64{}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 16<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			m[line[:i]] = v
		}
	}
	return m, sc.Err()
}

// sumPrefix adds every sample whose series name starts with prefix and
// whose labels contain every given label pair.
func sumPrefix(m map[string]float64, name string, labels ...string) float64 {
	var s float64
	for k, v := range m {
		if k != name && !strings.HasPrefix(k, name+"{") {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(k, l) {
				ok = false
			}
		}
		if ok {
			s += v
		}
	}
	return s
}

// CircuitReport prints the relays of the client's last circuit, by
// fingerprint and role, and what each saw, from each relay's own counters:
// bytes received on links, and the compute messages it received by type
// (unfed_hop_received_messages_total). In a confidential circuit a party
// receives only shares, masked openings and dealer randomness, and a dealer
// only DEAL requests; in an anonymous one the first shard receives the
// token ids and the last computes the logits.
func CircuitReport(ctx context.Context, n *Network, w io.Writer) error {
	circs, err := ClientCircuits(ctx, n)
	if err != nil {
		return err
	}
	if len(circs) == 0 {
		return fmt.Errorf("testnet: the client reports no circuit")
	}
	hops := circs[len(circs)-1]
	byFP := map[string]*Node{}
	for _, node := range n.Nodes {
		byFP[node.Fingerprint] = node
	}
	fmt.Fprintln(w, "\ncircuit (client → … → last hop) and what each relay saw:")
	for i, h := range hops {
		node := byFP[h.Fingerprint]
		name := "?"
		var m map[string]float64
		if node != nil {
			name = node.Name
			m, _ = Metrics(ctx, node)
		}
		got := func(t string) float64 { return sumPrefix(m, "unfed_hop_received_messages_total", `type="`+t+`"`) }
		bytes := sumPrefix(m, "unfed_link_received_bytes_total")
		role := h.Role
		if len(h.Layers) == 2 {
			role += fmt.Sprintf(" [%d,%d)", h.Layers[0], h.Layers[1])
		}
		fmt.Fprintf(w, "  hop %d  %-6s %-22s %s\n", i, name, role, h.Fingerprint)
		var saw string
		switch h.Role {
		case "guard":
			saw = "client address: yes; content: none (onion-encrypted cells only)"
		case "dealer":
			saw = fmt.Sprintf("client address: no; token ids, activations, logits: no (%.0f DEAL requests; it sends randomness and receives no data)", got("deal"))
		case "party-A", "party-B":
			saw = fmt.Sprintf("client address: no; token ids, activations, logits: no: shares only (%.0f input shares, %.0f masked openings, %.0f dealer messages)",
				got("mpc_input")+got("mpc_reshare"), got("mpc_peer"), got("mpc_prep"))
		default:
			lastHop := len(h.Layers) == 2 && h.Layers[1] == n.Spec.Layers
			saw = fmt.Sprintf("client address: no; token ids: %s; activations: %s; logits: %s", tokenView(got("tokens")),
				yesNo(got("activations") > 0), logitView(lastHop))
		}
		fmt.Fprintf(w, "         received %.0f bytes; %s\n", bytes, saw)
	}
	return nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func tokenView(plain float64) string {
	if plain > 0 {
		return fmt.Sprintf("YES (%.0f TOKENS messages in the clear: anonymous mode)", plain)
	}
	return "no"
}

func logitView(last bool) string {
	if last {
		return "YES, computed here (anonymous mode; returned onion-encrypted, the client samples)"
	}
	return "no"
}
