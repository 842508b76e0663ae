package testnet

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/unfed/unfed/compute/model"
	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/relay/keys"
)

// Spec describes a testnet.
type Spec struct {
	// Dir holds every node's directory, the state file and the logs.
	Dir string
	// BinDir holds the binaries.
	BinDir string
	// Model is the model file every compute relay and the client load.
	Model string
	// Tokenizer is a llama2.c tokenizer.bin, needed only for .bin checkpoints.
	Tokenizer string
	// Authorities is the number of directory authorities (default 3).
	Authorities int
	// Guards is the number of guard relays (default 2).
	Guards int
	// Shards is the number of anonymous compute shards tiling the model's
	// layers (default 2).
	Shards int
	// Replicas is the number of relays serving each shard (default 2).
	Replicas int
	// Stages is the number of confidential stages tiling the model's layers
	// (default 2, at most the layer count).
	Stages int
	// Parties is the number of MPC party relays serving each stage (default
	// 2: a circuit needs two; a third lets a circuit be rebuilt without one).
	Parties int
	// Dealers is the number of dealer relays (default Stages: a circuit
	// needs one per stage).
	Dealers int
	// Mode is the client's default circuit mode: confidential (default) or
	// anonymous.
	Mode string
	// AuditCapture makes every relay record every compute and edge message
	// it decrypts or sends to <data dir>/capture.log (audit_capture), for
	// unfed audit.
	AuditCapture bool
	// Layers is the model's layer count (read from the model by the caller).
	Layers int
	// Interval is the consensus interval (default 4s).
	Interval time.Duration
	// Client starts a client (default true through NewSpec).
	Client bool
	// Env is extra environment for every node.
	Env []string
	// Bridge adds an unlisted bridge relay (obfs4) and makes the client use
	// it, by its bridge line, instead of the public guards.
	Bridge bool
	// ManagedPT makes the client reach the bridge through an external
	// pluggable-transport binary (Debian's obfs4proxy) instead of the
	// in-process obfs4.
	ManagedPT string
	// RecordLinks makes every relay record each link frame it receives to
	// <node dir>/links.rec (debug.record_links), for tests of what relays see.
	RecordLinks bool
	// Economy turns payments on (spec/12-economy.md): every authority runs
	// a mint and a faucet, the consensus requires payment (pay-required 1,
	// short PPLNS windows), every compute relay charges 1000
	// micro-credits per position (dealers too), it and every party locks a stake of 10
	// units from the first authority's faucet (the authorities list Compute
	// and MPC only then) and runs a share-chain node producing a block
	// every 2 s, and the client pays from a wallet it fills at that faucet.
	Economy bool
	// LinksOnly (with Economy) makes the relays gossip share blocks over
	// their links only (economy.links_only, spec/12 §5.5): the authorities
	// get no blocks and the relays pull none from them; since the
	// authorities then see no stake, the consensus requires none.
	LinksOnly bool
	// Tor starts a private Tor network (tornet.go) before the UNFED nodes:
	// the client reaches its guard and the directory through it, and
	// relays and authorities can dial onion addresses through it.
	Tor bool
	// OnionRelay (with Tor) makes the first replica of the last anonymous
	// shard listen only as an onion service.
	OnionRelay bool
	// Link shapes every link to a relay (client → guard, relay → relay,
	// both directions) with a delaying forwarder the harness runs
	// (linkdelay.go); its processes must therefore stay in the foreground.
	Link LinkShape
	// LinkRecord, with Link, notes every chunk the forwarders pass on
	// (bounded; Network.Links), for tests and benchmarks that count what
	// crossed the links.
	LinkRecord bool
	// Verifiers is the number of verifier relays (role verifier,
	// spec/11-verification.md §3.5); they and the authorities get the
	// model file, so that tickets and fraud proofs are re-executed.
	Verifiers int
	// VerifyFraction is the network's verify-fraction, per mille (0: the
	// default, 5 %).
	VerifyFraction int64
	// TicketDelay is the client's ticket_delay (0: its default, 1 min;
	// negative: none).
	TicketDelay time.Duration
	// AuditPerMille is the client's audit_per_mille (0: the network's).
	AuditPerMille int
	// NoCommitments sets the client's no_commitments: no per-step
	// commitments (spec/11), for benchmarks that measure what they cost.
	NoCommitments bool
	// Cheater names a compute relay that runs the fault-injection build
	// (unfed-relay-cheat, built with -tags unfedcheat; spec/11 §6) with
	// UNFED_CHEAT_FRACTION=CheatFraction. Only tests build that program.
	Cheater       string
	CheatFraction float64
	// CheatTamper makes Cheater a dealer or party instead, run with
	// UNFED_CHEAT_TAMPER=1: it alters every PREP or output piece after
	// committing to it (spec/11 §7.3).
	CheatTamper bool
	// CheatMiscompute makes Cheater a party instead, run with
	// UNFED_CHEAT_MISCOMPUTE=1: it alters its output share of every step
	// after computing it and commits to what it sends (spec/11 §7.4).
	CheatMiscompute bool
}

// CheatBinary is the relay program built with the unfedcheat tag
// (BuildCheat); no release or `make build` produces it.
const CheatBinary = "unfed-relay-cheat"

// TestnetChainID is the chain-id of a paying testnet's consensus: its
// share-chain is "unfed-7", not the default network's (spec/12 §5.1).
const TestnetChainID = 7

func (s *Spec) defaults() {
	if s.Authorities <= 0 {
		s.Authorities = 3
	}
	if s.Guards <= 0 {
		s.Guards = 2
	}
	if s.Shards <= 0 {
		s.Shards = 2
	}
	if s.Replicas <= 0 {
		s.Replicas = 2
	}
	if s.Stages <= 0 {
		s.Stages = 2
	}
	if s.Parties <= 0 {
		s.Parties = 2
	}
	if s.Dealers <= 0 {
		s.Dealers = s.Stages
	}
	if s.Mode == "" {
		s.Mode = "confidential"
	}
	if s.Interval <= 0 {
		s.Interval = 4 * time.Second
		if s.Tor {
			// Probes of onion relays cross Tor: a longer period leaves
			// them time (torDirConfig).
			s.Interval = 20 * time.Second
		}
	}
}

// Node is one process of a testnet.
type Node struct {
	Name        string
	Kind        string // dirauth, relay, client
	Role        string // authority, guard, bridge, compute, party, dealer, client
	Layers      [2]int // for compute and party relays
	Onion       bool   // listens only as an onion service (Spec.OnionRelay)
	Fingerprint string
	Dir         string
	Config      string
	Proc        *Proc `json:"-"`
	// Killed marks a node a test killed on purpose: StopAll does not count
	// its exit as unclean.
	Killed    bool
	Pid       int
	Listeners map[string]string
	// Binary, when set, is the program to run instead of the kind's
	// (CheatBinary for Spec.Cheater), and Env extra environment for it.
	Binary string   `json:",omitempty"`
	Env    []string `json:",omitempty"`
	// fwd is the delaying forwarder in front of a relay (Spec.Link).
	fwd *Forwarder
}

// Network is a running testnet.
type Network struct {
	Spec  Spec
	Nodes []*Node
	// Tor is the private Tor network, with Spec.Tor.
	Tor *TorNet `json:",omitempty"`
	// Links is the forwarders' record, with Spec.Link and Spec.LinkRecord.
	Links *LinkRecord `json:"-"`
	mu    sync.Mutex
}

// stateFile records a running testnet for `unfed testnet status` and `down`.
const stateFile = "testnet.json"

// ShardRanges splits layers [0, n) into k contiguous ranges as evenly as
// possible: the anonymous shards, and the confidential stages.
func ShardRanges(n, k int) [][2]int {
	k = max(1, min(k, n))
	var out [][2]int
	first := 0
	for i := 0; i < k; i++ {
		size := n / k
		if i < n%k {
			size++
		}
		out = append(out, [2]int{first, first + size})
		first += size
	}
	return out
}

// Generate creates every node's keys and configuration under spec.Dir
// without starting anything. Authorities get fixed loopback ports (each must
// know the others' addresses before any starts); every other listener is
// ":0" and found from the listening lines.
func Generate(spec Spec) (*Network, error) {
	spec.defaults()
	man, err := model.ComputeManifest(spec.Model, 1)
	if err != nil {
		return nil, fmt.Errorf("testnet: %w", err)
	}
	spec.Layers = man.Config.NLayers
	if spec.Mode != "confidential" && spec.Mode != "anonymous" {
		return nil, fmt.Errorf("testnet: mode %q: want confidential or anonymous", spec.Mode)
	}
	if err := os.MkdirAll(spec.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("testnet: %w", err)
	}
	n := &Network{Spec: spec}
	stores := map[string]*keys.Store{}
	add := func(name, kind, role string) (*Node, error) {
		dir := filepath.Join(spec.Dir, name)
		store, err := keys.Open(filepath.Join(dir, "data"), keys.Options{})
		if err != nil {
			return nil, err
		}
		stores[name] = store
		node := &Node{Name: name, Kind: kind, Role: role, Dir: dir, Config: filepath.Join(dir, "config.yaml"), Fingerprint: store.Identity().Fingerprint().String()}
		n.Nodes = append(n.Nodes, node)
		return node, nil
	}
	var auths []map[string]any
	var authAddrs []string
	authHost := authorityHost()
	authPorts := &portPicker{host: authHost}
	for i := 0; i < spec.Authorities; i++ {
		node, err := add(fmt.Sprintf("auth%d", i+1), "dirauth", "authority")
		if err != nil {
			return nil, err
		}
		port, err := authPorts.pick()
		if err != nil {
			return nil, err
		}
		addr := net.JoinHostPort(authHost, strconv.Itoa(port))
		authAddrs = append(authAddrs, addr)
		auths = append(auths, map[string]any{
			"name":        node.Name,
			"identity":    base64.StdEncoding.EncodeToString(stores[node.Name].Identity().Public),
			"fingerprint": node.Fingerprint,
			"address":     addr,
		})
	}
	for i := 0; i < spec.Guards; i++ {
		if _, err := add(fmt.Sprintf("guard%d", i+1), "relay", "guard"); err != nil {
			return nil, err
		}
	}
	if spec.Bridge {
		if _, err := add("bridge1", "relay", "bridge"); err != nil {
			return nil, err
		}
	}
	ranges := ShardRanges(spec.Layers, spec.Shards)
	for si, r := range ranges {
		for j := 0; j < spec.Replicas; j++ {
			node, err := add(fmt.Sprintf("s%d-%d", si+1, j+1), "relay", "compute")
			if err != nil {
				return nil, err
			}
			node.Layers = r
		}
	}
	for si, r := range ShardRanges(spec.Layers, spec.Stages) {
		for j := 0; j < spec.Parties; j++ {
			node, err := add(fmt.Sprintf("p%d-%d", si+1, j+1), "relay", "party")
			if err != nil {
				return nil, err
			}
			node.Layers = r
		}
	}
	for i := 0; i < spec.Dealers; i++ {
		if _, err := add(fmt.Sprintf("d%d", i+1), "relay", "dealer"); err != nil {
			return nil, err
		}
	}
	for i := 0; i < spec.Verifiers; i++ {
		if _, err := add(fmt.Sprintf("v%d", i+1), "relay", "verifier"); err != nil {
			return nil, err
		}
	}
	if spec.Cheater != "" && spec.CheatMiscompute {
		node := n.node(spec.Cheater)
		if node == nil || node.Role != "party" {
			return nil, fmt.Errorf("testnet: miscomputing cheater %q must be a party", spec.Cheater)
		}
		node.Binary = CheatBinary
		node.Env = []string{"UNFED_CHEAT_MISCOMPUTE=1"}
	} else if spec.Cheater != "" && spec.CheatTamper {
		node := n.node(spec.Cheater)
		if node == nil || (node.Role != "dealer" && node.Role != "party") {
			return nil, fmt.Errorf("testnet: tampering cheater %q must be a dealer or party", spec.Cheater)
		}
		node.Binary = CheatBinary
		node.Env = []string{"UNFED_CHEAT_TAMPER=1"}
	} else if spec.Cheater != "" {
		node := n.node(spec.Cheater)
		if node == nil || node.Role != "compute" || spec.CheatFraction <= 0 || spec.CheatFraction > 1 {
			return nil, fmt.Errorf("testnet: cheater %q must be a compute relay, with a fraction in (0, 1]", spec.Cheater)
		}
		node.Binary = CheatBinary
		node.Env = []string{"UNFED_CHEAT_FRACTION=" + strconv.FormatFloat(spec.CheatFraction, 'g', -1, 64)}
	}
	if spec.Client {
		if _, err := add("client", "client", "client"); err != nil {
			return nil, err
		}
	}
	n.shareCPUs(runtime.NumCPU(), os.Getenv("GOMAXPROCS") != "")

	var shards []map[string]any
	for _, r := range ranges {
		shards = append(shards, map[string]any{"first": r[0], "last": r[1]})
	}
	// The tensor hash root (spec/06 §5.2): clients verify bundles against
	// it.
	root := man.Root()
	catalog := []map[string]any{{
		"id": man.IDHex(), "architecture": man.Config.Arch, "layers": spec.Layers,
		"shards": shards, "tensor_hash_root": hex.EncodeToString(root[:]),
	}}
	if name := ModelName(spec.Model); name != "" {
		catalog[0]["name"] = name
	}
	if spec.Verifiers > 0 {
		// Authorities re-execute fraud proofs with it (spec/11 §5.2).
		catalog[0]["file"] = spec.Model
	}
	params := map[string]int64{"stable-uptime": 0, "guard-uptime": 0, "guard-min-tps": 0, "valid-periods": 3}
	if spec.VerifyFraction > 0 {
		params[directory.ParamVerifyFraction] = spec.VerifyFraction
	}
	if spec.Economy {
		params[directory.ParamPayRequired] = 1
		params[directory.ParamPPLNSWindow] = 50
		params[directory.ParamPPLNSMaturity] = 1
		params[directory.ParamStake] = 10
		params[directory.ParamChainID] = TestnetChainID
		if spec.LinksOnly { // the authorities see no chain, so no stake either
			params[directory.ParamStake] = 0
		}
	}
	var torNodes []*Node
	if spec.Tor {
		if n.Tor, torNodes, err = generateTor(spec.Dir); err != nil {
			return nil, err
		}
	} else if spec.OnionRelay {
		return nil, errors.New("testnet: an onion relay needs the private Tor network (Tor)")
	}
	onionRelay := ""
	if spec.OnionRelay {
		onionRelay = fmt.Sprintf("s%d-1", len(ranges))
	}
	secs := int(spec.Interval / time.Second)
	logCfg := map[string]any{"level": "info", "format": "text"}
	for i, node := range n.Nodes {
		var cfg map[string]any
		switch node.Kind {
		case "dirauth":
			cfg = map[string]any{
				"data_dir": "data", "listen": authAddrs[i], "authorities": auths,
				"interval": fmt.Sprintf("%ds", secs), "vote_delay": fmt.Sprintf("%ds", max(1, secs/4)),
				"dist_delay": fmt.Sprintf("%ds", max(1, secs/4)),
				"params":     params,
				"models":     catalog,
				// Every testnet relay is on 127.0.0.1 and uploads every interval (spec 04 §3.5).
				"max_relays_per_addr": 64, "upload_rate": 20, "upload_burst": 100,
				"log":     logCfg,
				"metrics": map[string]any{"listen": "127.0.0.1:0"},
			}
			if spec.Economy {
				cfg["mint"] = map[string]any{"enabled": true, "faucet": true, "denoms": []uint64{1, 10}}
			}
		case "relay":
			cfg = map[string]any{
				"data_dir": "data", "nickname": node.Name, "authorities": auths,
				"or": map[string]any{"tcp": "127.0.0.1:0"},
				// Every relay of a testnet is on 127.0.0.1.
				"extend_allow_private_addresses": true,
				"publish_interval":               fmt.Sprintf("%ds", secs),
				"capacity":                       map[string]any{"sessions": 64, "tokens_per_sec": 1000},
				"log":                            logCfg,
				"metrics":                        map[string]any{"listen": "127.0.0.1:0"},
			}
			if spec.RecordLinks {
				cfg["debug"] = map[string]any{"record_links": filepath.Join(node.Dir, "links.rec")}
			}
			if spec.AuditCapture {
				cfg["audit_capture"] = true
			}
			if spec.Link.Active() && node.Role != "bridge" {
				f, err := NewForwarder(spec.Link)
				if err != nil {
					n.closeForwarders()
					return nil, err
				}
				node.fwd = f
				if spec.LinkRecord {
					if n.Links == nil {
						n.Links = &LinkRecord{}
					}
					f.Record(n.Links, node.Name)
				}
				dbg, _ := cfg["debug"].(map[string]any)
				if dbg == nil {
					dbg = map[string]any{}
				}
				dbg["advertise_tcp"] = f.Addr()
				cfg["debug"] = dbg
			}
			compute := map[string]any{"model": spec.Model, "max_sessions": 64}
			if spec.Tokenizer != "" {
				compute["tokenizer"] = spec.Tokenizer
			}
			switch node.Role {
			case "guard":
				cfg["roles"] = []string{"guard"}
				cfg["dir"] = map[string]any{"listen": "127.0.0.1:0"}
			case "bridge":
				cfg["roles"] = []string{"guard", "bridge"}
				cfg["or"] = map[string]any{"tcp": "", "obfs4": "127.0.0.1:0"}
			case "party":
				cfg["roles"] = []string{"mpc"}
				compute["first"], compute["last"] = node.Layers[0], node.Layers[1]
				cfg["compute"] = compute
				// Every relay of a testnet shares this machine's cores, so
				// a party has no idle time to evaluate a PREP ahead in: the
				// work would land on the cores the other relays need
				// (spec 05 §5.2, docs/perf/mpc.md).
				cfg["mpc"] = map[string]any{"precompute_mib": -1}
				if spec.Economy { // parties lock stake for the MPC flag (spec/12 §7.1) and charge per position (spec/03 §3.15)
					cfg["price_per_token"] = 1000
					cfg["economy"] = map[string]any{"enabled": true, "block_interval": "2s", "stake_faucet": "http://" + authAddrs[0]}
				}
			case "dealer":
				cfg["roles"] = []string{"dealer"}
				cfg["compute"] = map[string]any{"model": spec.Model, "max_sessions": 64}
				if spec.Economy { // a dealer charges per position dealt (spec/03 §3.15)
					cfg["price_per_token"] = 1000
					cfg["economy"] = map[string]any{"enabled": true, "block_interval": "2s"}
				}
			case "verifier":
				cfg["roles"] = []string{"verifier"}
				cfg["compute"] = map[string]any{"model": spec.Model}
			case "compute":
				cfg["roles"] = []string{"compute"}
				compute["first"], compute["last"] = node.Layers[0], node.Layers[1]
				cfg["compute"] = compute
				if spec.Economy {
					cfg["price_per_token"] = 1000
					cfg["economy"] = map[string]any{"enabled": true, "block_interval": "2s", "stake_faucet": "http://" + authAddrs[0]}
				}
			}
		case "client":
			m := map[string]any{"path": spec.Model}
			if spec.Tokenizer != "" {
				m["tokenizer"] = spec.Tokenizer
			}
			cfg = map[string]any{
				"data_dir": "data", "authorities": auths,
				"api":        map[string]any{"listen": "127.0.0.1:0"},
				"socks":      map[string]any{"listen": "127.0.0.1:0"},
				"models":     []map[string]any{m},
				"managed_pt": map[string]any{"path": spec.ManagedPT, "method": map[bool]string{true: "obfs4", false: ""}[spec.ManagedPT != ""]},
				"circuit":    clientCircuit(spec),
				"log":        logCfg,
				"metrics":    map[string]any{"listen": "127.0.0.1:0"},
			}
			if spec.Economy {
				cfg["wallet"] = map[string]any{"faucet": "http://" + authAddrs[0]}
			}
		}
		if e, ok := cfg["economy"].(map[string]any); ok && spec.LinksOnly {
			e["links_only"] = true
		}
		if n.Tor != nil {
			node.Onion = node.Name == onionRelay
			n.Tor.configure(node, cfg, node.Onion, spec.Interval)
		}
		if err := writeConfig(node.Config, cfg); err != nil {
			return nil, err
		}
	}
	// Tor's processes come first: started before and stopped after every
	// UNFED node.
	n.Nodes = append(torNodes, n.Nodes...)
	return n, nil
}

// authorityHost picks a loopback address of 127.0.0.0/8 other than 127.0.0.1
// for a network's authorities. Their ports must be fixed before they start
// (every node's config names them), so the harness reserves them with
// freePort and releases them again; on an address no other process binds
// with :0, nothing can take such a port in between, as an ephemeral port on
// 127.0.0.1 could.
func authorityHost() string {
	var b [3]byte
	rand.Read(b[:])
	if b[0] == 0 {
		b[0] = 1
	}
	if b[2] == 0 || b[2] == 255 {
		b[2] = 1
	}
	return fmt.Sprintf("127.%d.%d.%d", b[0], b[1], b[2])
}

// freePort asks the kernel for a free port on host. The port is free when
// returned; an authority binds it moments later.
func freePort(host string) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("testnet: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// portPicker hands out free ports that differ from every port it handed
// out before. freePort alone may return a port twice: the kernel may give
// a released port to the next listener, and then two nodes' torrcs name
// the same port and the second tor cannot bind it.
type portPicker struct {
	host string
	used map[int]bool
	free func(host string) (int, error) // freePort unless a test sets it
}

func (p *portPicker) pick() (int, error) {
	if p.used == nil {
		p.used = map[int]bool{}
	}
	free := p.free
	if free == nil {
		free = freePort
	}
	for range 64 {
		port, err := free(p.host)
		if err != nil {
			return 0, err
		}
		if !p.used[port] {
			p.used[port] = true
			return port, nil
		}
	}
	return 0, fmt.Errorf("testnet: no unused port on %s after 64 tries", p.host)
}

// node returns the node with the given name.
func (n *Network) node(name string) *Node {
	for _, x := range n.Nodes {
		if x.Name == name {
			return x
		}
	}
	return nil
}

// writeConfig writes a node's YAML configuration.
func writeConfig(path string, cfg map[string]any) error {
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("testnet: %w", err)
	}
	return os.WriteFile(path, b, 0o600)
}

// Save writes the state file.
func (n *Network) Save() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, node := range n.Nodes {
		if node.Proc != nil {
			node.Pid = node.Proc.Pid()
			node.Listeners = node.Proc.listenersCopy()
		}
	}
	b, err := json.MarshalIndent(n, "", "  ")
	if err != nil {
		return fmt.Errorf("testnet: %w", err)
	}
	return os.WriteFile(filepath.Join(n.Spec.Dir, stateFile), b, 0o600)
}

// Load reads a state file written by Save.
func Load(dir string) (*Network, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return nil, fmt.Errorf("testnet: no testnet in %s: %w", dir, err)
	}
	var n Network
	if err := json.Unmarshal(b, &n); err != nil {
		return nil, fmt.Errorf("testnet: %s is corrupt: %w", filepath.Join(dir, stateFile), err)
	}
	return &n, nil
}

func (p *Proc) listenersCopy() map[string]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := make(map[string]string, len(p.listeners))
	for k, v := range p.listeners {
		m[k] = v
	}
	return m
}

// Alive reports whether a node's recorded process is still running.
func (node *Node) Alive() bool {
	if node.Pid <= 0 {
		return false
	}
	return syscall.Kill(node.Pid, 0) == nil
}

// StopAll stops every started node, the client first and the authorities
// last, and reports every unclean exit.
func (n *Network) StopAll(timeout time.Duration) error {
	var errs []error
	order := slices.Clone(n.Nodes)
	slices.Reverse(order)
	for _, node := range order {
		if node.Proc != nil && !node.Killed {
			if err := node.Proc.Stop(timeout); err != nil {
				errs = append(errs, err)
			}
		}
	}
	n.closeForwarders()
	return errors.Join(errs...)
}

// StopRecorded stops the processes recorded in a state file (for
// `unfed testnet down` from another process): SIGTERM to every node at once,
// then SIGKILL to those still running after timeout, so the whole stop is
// bounded by timeout however many nodes there are. It reports nodes that
// needed SIGKILL.
func StopRecorded(n *Network, timeout time.Duration, w io.Writer) error {
	var running []*Node
	for _, node := range slices.Backward(n.Nodes) {
		if node.Alive() {
			syscall.Kill(node.Pid, syscall.SIGTERM)
			running = append(running, node)
		}
	}
	deadline := time.Now().Add(timeout)
	for len(running) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		running = slices.DeleteFunc(running, func(node *Node) bool {
			if node.Alive() {
				return false
			}
			fmt.Fprintf(w, "stopped %s\n", node.Name)
			return true
		})
	}
	if len(running) == 0 {
		return nil
	}
	stuck := &StuckError{Timeout: timeout}
	for _, node := range running {
		// What the process was doing, read before it is killed: its
		// threads' states and kernel wait channels, and its logs' tails.
		diag := ProcessState(node.Pid) + tailLogs(node.Dir)
		syscall.Kill(-node.Pid, syscall.SIGKILL)
		stuck.Nodes = append(stuck.Nodes, node)
		stuck.Diag = append(stuck.Diag, diag)
		fmt.Fprintf(w, "killed %s\n", node.Name)
	}
	return stuck
}

// StuckError reports the nodes StopRecorded had to kill because they did
// not exit within Timeout of SIGTERM, with what each was doing then.
type StuckError struct {
	Timeout time.Duration
	Nodes   []*Node
	Diag    []string // per node: ProcessState and the tails of its logs
}

func (e *StuckError) Error() string {
	names := make([]string, len(e.Nodes))
	for i, node := range e.Nodes {
		names[i] = node.Name
	}
	return fmt.Sprintf("testnet: killed after %s without a clean exit: %s", e.Timeout, strings.Join(names, ", "))
}

// ProcessState describes a live process from /proc: every thread's name,
// scheduler state and kernel wait channel, one line each ("" when the
// process is gone).
func ProcessState(pid int) string {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return ""
	}
	var b strings.Builder
	for _, t := range tasks {
		dir := fmt.Sprintf("/proc/%d/task/%s/", pid, t.Name())
		comm, _ := os.ReadFile(dir + "comm")
		wchan, _ := os.ReadFile(dir + "wchan")
		stat, _ := os.ReadFile(dir + "stat")
		state := "?"
		// stat: "tid (comm) S ...": the state follows the last ')'.
		if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && i+2 < len(stat) {
			state = string(stat[i+2 : i+3])
		}
		fmt.Fprintf(&b, "  thread %s %s state %s wchan %s\n", t.Name(), strings.TrimSpace(string(comm)), state, wchan)
	}
	return b.String()
}

// tailLogs returns the last lines of a node's logs (stderr.log, and
// notice.log for tor nodes).
func tailLogs(dir string) string {
	var b strings.Builder
	for _, name := range []string{"stderr.log", "notice.log"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || len(data) == 0 {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		lines = lines[max(0, len(lines)-8):]
		fmt.Fprintf(&b, "  %s:\n    %s\n", name, strings.Join(lines, "\n    "))
	}
	return b.String()
}

// waitCtx is a helper for bounded waits.
func waitCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// openStore opens a node's keys.
func openStore(node *Node) (*keys.Store, error) {
	return keys.Open(filepath.Join(node.Dir, "data"), keys.Options{})
}

// ModelName is the catalog name a testnet gives the model in file: its base
// name without extension (stories260K.gguf: stories260K) with every
// character a DNS label cannot hold turned into '-'; "" if nothing is left.
func ModelName(file string) string {
	base := strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
	b := []byte(base)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			b[i] = '-'
		}
	}
	name := strings.Trim(string(b), "-")
	if len(name) > 63 {
		name = strings.TrimRight(name[:63], "-")
	}
	if !directory.ValidModelName(name) {
		return ""
	}
	return name
}

// clientCircuit is the client's circuit section.
func clientCircuit(spec Spec) map[string]any {
	c := map[string]any{"mode": spec.Mode}
	if spec.TicketDelay != 0 {
		c["ticket_delay"] = spec.TicketDelay.String()
	}
	if spec.AuditPerMille != 0 {
		c["audit_per_mille"] = spec.AuditPerMille
	}
	if spec.NoCommitments {
		c["no_commitments"] = true
	}
	return c
}

// shareCPUs gives every MPC party and dealer one thread of Go code
// (GOMAXPROCS=1) when the network runs more of them than the machine has
// CPUs: they then share the cores with each other anyway, and a runtime
// sized for every core spends the difference spinning idle threads and
// handing goroutines between them (docs/perf/confidential.md § The
// scheduler's share: 14–30 % of a confidential token's CPU on two cores).
// Relays on machines of their own keep Go's default; so does a network
// whose harness sets GOMAXPROCS itself (inherited, or in Spec.Env).
func (n *Network) shareCPUs(cpus int, inherited bool) {
	if inherited || slices.ContainsFunc(n.Spec.Env, func(e string) bool { return strings.HasPrefix(e, "GOMAXPROCS=") }) {
		return
	}
	var mpc []*Node
	for _, node := range n.Nodes {
		if node.Role == "party" || node.Role == "dealer" {
			mpc = append(mpc, node)
		}
	}
	if len(mpc) <= cpus {
		return
	}
	for _, node := range mpc {
		node.Env = append(node.Env, "GOMAXPROCS=1")
	}
}
