package relay

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/relay/obs"
	"github.com/unfed/unfed/transports/onion"
)

// Config is the relay's configuration (spec/09-relay-operation.md §2). Every
// field has a one-sentence doc; the zero value of a field means its default.
type Config struct {
	DataDir         string                     `mapstructure:"data_dir" doc:"Directory for keys and state (created mode 0700)."`
	Nickname        string                     `mapstructure:"nickname" doc:"Operator-chosen relay name shown in the consensus."`
	Log             obs.LogConfig              `mapstructure:"log"`
	Metrics         MetricsConfig              `mapstructure:"metrics"`
	OR              ORConfig                   `mapstructure:"or"`
	Dir             DirConfig                  `mapstructure:"dir"`
	Roles           []string                   `mapstructure:"roles" doc:"Roles this relay offers: guard, compute, mpc, dealer, bridge, verifier."`
	Compute         ComputeConfig              `mapstructure:"compute"`
	MPC             MPCConfig                  `mapstructure:"mpc"`
	Verifier        VerifierConfig             `mapstructure:"verifier"`
	Economy         EconomyConfig              `mapstructure:"economy"`
	Authorities     []directory.AuthorityEntry `mapstructure:"authorities" doc:"Directory authorities to publish the descriptor to and fetch the consensus from."`
	PublishInterval time.Duration              `mapstructure:"publish_interval" doc:"Descriptor re-upload period (0 means 1h; keep it below descriptor-max-age)."`
	Capacity        CapacityConfig             `mapstructure:"capacity"`
	PricePerToken   uint64                     `mapstructure:"price_per_token" doc:"Advertised price per token, in micro-credits."`
	Family          []string                   `mapstructure:"family" doc:"Fingerprints (40 hex) of relays run by the same operator."`
	Contact         string                     `mapstructure:"contact" doc:"Operator contact, printable ASCII, published in the descriptor."`
	// ExtendAllowPrivate is Tor's ExtendAllowPrivateAddresses.
	ExtendAllowPrivate bool `mapstructure:"extend_allow_private_addresses" doc:"Extend circuits to loopback, private, link-local and DNS-named addresses (off: refused; test networks on 127.0.0.1 turn it on)."`
	// RequirePQSignatures decides whether a consensus needs ML-DSA-65 signatures.
	RequirePQSignatures string       `mapstructure:"require_pq_signatures" doc:"Require ML-DSA-65 consensus signatures: auto (when every authority lists an ML-DSA key; the default), on, off."`
	Debug               DebugConfig  `mapstructure:"debug"`
	Tor                 onion.Config `mapstructure:"tor"`
	AuditCapture        bool         `mapstructure:"audit_capture" doc:"testing only: record every compute and edge message this relay decrypts or sends, in plaintext, to capture.log in data_dir; never on a real relay"`
}

// DebugConfig holds test and audit hooks. Never enable them on a relay
// serving real users.
type DebugConfig struct {
	RecordLinks  string `mapstructure:"record_links" doc:"Test/audit hook: append every decrypted link frame this relay receives to this file (never on a public relay)."`
	AdvertiseTCP string `mapstructure:"advertise_tcp" doc:"Test hook: publish this host:port for the TCP listener instead of the bound one, e.g. the testnet's delaying forwarder in front of it (never on a public relay)."`
	// PprofAddr is an operator's profiling endpoint, safe on a serving relay
	// as long as only the operator can reach it.
	PprofAddr        string `mapstructure:"pprof_addr" doc:"Serve Go's net/http/pprof (CPU, heap, goroutine profiles, execution trace) at /debug/pprof/ on this host:port (empty, the default, disables; a bare :PORT binds 127.0.0.1; a non-loopback host needs debug.pprof_allow_remote)."`
	PprofAllowRemote bool   `mapstructure:"pprof_allow_remote" doc:"Let debug.pprof_addr bind a non-loopback address (profiles show the process's stacks and memory to whoever connects; put a firewall in front)."`
}

// MetricsConfig is the /metrics and /healthz listener.
type MetricsConfig struct {
	Listen string `mapstructure:"listen" doc:"Address for /metrics and /healthz (host:port, :0 picks a port; empty disables)."`
}

// ORConfig are the link listeners, one per transport.
type ORConfig struct {
	TCP          string `mapstructure:"tcp" doc:"Plain TCP link listener (host:port, :0 picks a port; empty disables)."`
	QUIC         string `mapstructure:"quic" doc:"QUIC link listener (host:port, :0 picks a port; empty disables)."`
	Obfs4        string `mapstructure:"obfs4" doc:"In-process obfs4 link listener (host:port, :0 picks a port; empty disables)."`
	Obfs4IATMode int    `mapstructure:"obfs4_iat_mode" doc:"obfs4 inter-arrival-time obfuscation: 0 off, 1 on, 2 paranoid."`
	Address      string `mapstructure:"address" doc:"Host to publish for listeners bound to every address (empty means 127.0.0.1)."`
	Onion        string `mapstructure:"onion" doc:"Listen as a v3 onion service on this virtual port (:PORT; needs tor.enabled; empty disables); the address is <key>.onion:PORT, the key kept in data_dir/onion."`
}

// DirConfig is the directory cache.
type DirConfig struct {
	Listen string `mapstructure:"listen" doc:"Directory cache HTTP listener serving GET /unfed/dir/v1/consensus (empty disables)."`
}

// ComputeConfig is what a compute, mpc (party) or dealer relay serves.
type ComputeConfig struct {
	Model        string `mapstructure:"model" doc:"Model file (GGUF or llama2.c .bin) for roles compute, mpc and dealer (a dealer reads only its shape)."`
	Tokenizer    string `mapstructure:"tokenizer" doc:"llama2.c tokenizer.bin, only for .bin models (checked to exist; relays do not tokenize)."`
	First        int    `mapstructure:"first" doc:"First layer served (inclusive): of the shard (compute) or of the confidential stage (mpc)."`
	Last         int    `mapstructure:"last" doc:"Layer after the last served (exclusive): of the shard (compute) or of the confidential stage (mpc)."`
	MaxSessions  int    `mapstructure:"max_sessions" doc:"Concurrent sessions (0 means unlimited for a shard, 16 for party and for dealer sessions)."`
	MaxContext   int    `mapstructure:"max_context" doc:"Positions per session (0 means the model's context length for a shard, 2048 for parties and dealers)."`
	MemoryBudget int64  `mapstructure:"memory_budget" doc:"Bytes of KV cache over all sessions (0 means unlimited)."`
	Threads      int    `mapstructure:"threads" doc:"Goroutines per matrix product (0 means GOMAXPROCS)."`
	RefuseTokens bool   `mapstructure:"refuse_tokens" doc:"Do not serve as the first shard of anonymous circuits, which send this relay the prompt's token ids (spec/10 §1: anonymous-mode compute relays read the content); the relay then serves only ACTIVATIONS input."`
}

// MPCConfig tunes a party of a confidential stage (role mpc).
type MPCConfig struct {
	// PrecomputeMiB bounds, per session, the memory of a step's lookup keys
	// evaluated on the worker pool before the step's rounds (05-mpc §5.2).
	PrecomputeMiB int `mapstructure:"precompute_mib" doc:"MiB per party session for lookup keys evaluated before a step's rounds (0: 128; -1: none)."`
	// MaxPendingMiB bounds what one party session holds queued.
	MaxPendingMiB int `mapstructure:"max_pending_mib" doc:"MiB per party session of queued PREPs, inputs and peer messages (0: 256)."`
}

// CapacityConfig is what the relay advertises it can carry.
type CapacityConfig struct {
	Sessions     uint64 `mapstructure:"sessions" doc:"Advertised concurrent sessions."`
	TokensPerSec uint64 `mapstructure:"tokens_per_sec" doc:"Advertised tokens per second."`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		DataDir:         "unfed-relay-data",
		Nickname:        "unnamed",
		Log:             obs.DefaultLogConfig(),
		Metrics:         MetricsConfig{Listen: "127.0.0.1:0"},
		OR:              ORConfig{TCP: ":0"},
		Roles:           []string{string(directory.RoleGuard)},
		PublishInterval: time.Hour,
		Capacity:        CapacityConfig{Sessions: 16, TokensPerSec: 100},
	}
}

// settings is a Config checked and decoded.
type settings struct {
	roles  []directory.Role
	family []keys.Fingerprint
}

func (s *settings) has(r directory.Role) bool { return slices.Contains(s.roles, r) }

// check validates cfg before anything is opened.
func (cfg *Config) check() (*settings, error) {
	s := &settings{}
	if cfg.DataDir == "" {
		return nil, errors.New("relay: data_dir is required")
	}
	for _, r := range cfg.Roles {
		role := directory.Role(strings.ToLower(strings.TrimSpace(r)))
		switch role {
		case directory.RoleGuard, directory.RoleCompute, directory.RoleMPC, directory.RoleDealer, directory.RoleBridge, directory.RoleVerifier:
		default:
			return nil, fmt.Errorf("relay: unknown role %q (want guard, compute, mpc, dealer, bridge or verifier)", r)
		}
		if !slices.Contains(s.roles, role) {
			s.roles = append(s.roles, role)
		}
	}
	if len(s.roles) == 0 {
		return nil, errors.New("relay: roles: at least one role is required")
	}
	if cfg.OR.TCP == "" && cfg.OR.QUIC == "" && cfg.OR.Obfs4 == "" && cfg.OR.Onion == "" {
		return nil, errors.New("relay: no link listener: set or.tcp, or.quic, or.obfs4 or or.onion")
	}
	if cfg.OR.Onion != "" && (!cfg.Tor.Enabled || cfg.Tor.SOCKS != "") {
		return nil, errors.New("relay: or.onion needs tor.enabled and a tor of the relay's own (no tor.socks)")
	}
	if s.has(directory.RoleBridge) && !plainBridgeListeners && (cfg.OR.TCP != "" || cfg.OR.QUIC != "") {
		// Anything a scanner can complete a handshake with tells it this
		// is a relay; a bridge answers only who knows its obfs4 cert
		// (spec/09-relay-operation.md, Bridges).
		return nil, errors.New("relay: a bridge serves only on obfs4: set or.obfs4 and leave or.tcp and or.quic empty")
	}
	if s.has(directory.RoleBridge) && cfg.OR.Obfs4 == "" {
		return nil, errors.New("relay: a bridge needs or.obfs4")
	}
	if cfg.OR.Obfs4IATMode < 0 || cfg.OR.Obfs4IATMode > 2 {
		return nil, fmt.Errorf("relay: or.obfs4_iat_mode %d: want 0, 1 or 2", cfg.OR.Obfs4IATMode)
	}
	if s.has(directory.RoleCompute) && s.has(directory.RoleMPC) {
		return nil, errors.New("relay: roles compute and mpc are exclusive: a descriptor names one layer range")
	}
	if (s.has(directory.RoleCompute) || s.has(directory.RoleMPC) || s.has(directory.RoleDealer) || s.has(directory.RoleVerifier)) && cfg.Compute.Model == "" {
		return nil, errors.New("relay: compute.model is required for roles compute, mpc, dealer and verifier")
	}
	if s.has(directory.RoleVerifier) {
		// A verifier confirms a Fraud verdict on the portable kernels,
		// which it switches to process-wide (spec/11 §4.1): no other
		// compute may run in its process.
		if s.has(directory.RoleCompute) || s.has(directory.RoleMPC) || s.has(directory.RoleDealer) || s.has(directory.RoleBridge) {
			return nil, errors.New("relay: role verifier excludes compute, mpc, dealer and bridge")
		}
		if v := cfg.Verifier; v.MaxTicketMiB < 0 || v.MaxTicketMiB > 64 || v.Queue < 0 || v.PerCircuit < 0 {
			return nil, errors.New("relay: verifier.max_ticket_mib must be within [0, 64], verifier.queue and verifier.per_circuit not negative")
		}
		if len(cfg.Authorities) == 0 {
			return nil, errors.New("relay: a verifier needs authorities (the consensus to check signers, and where to send proofs)")
		}
	}
	if s.has(directory.RoleCompute) || s.has(directory.RoleMPC) {
		// A dealer deals any stage: its range is not used.
		if cfg.Compute.First < 0 || cfg.Compute.Last <= cfg.Compute.First || cfg.Compute.Last > directory.MaxStageLayer {
			return nil, fmt.Errorf("relay: compute layer range [%d,%d) is empty, negative or too large", cfg.Compute.First, cfg.Compute.Last)
		}
	}
	if s.has(directory.RoleCompute) || s.has(directory.RoleMPC) || s.has(directory.RoleDealer) {
		if cfg.Compute.MaxSessions < 0 || cfg.Compute.MaxContext < 0 {
			return nil, errors.New("relay: compute.max_sessions and compute.max_context must not be negative")
		}
	}
	if s.has(directory.RoleMPC) {
		if cfg.MPC.PrecomputeMiB < -1 || cfg.MPC.PrecomputeMiB > 1<<16 {
			return nil, fmt.Errorf("relay: mpc.precompute_mib %d outside [-1, 65536]", cfg.MPC.PrecomputeMiB)
		}
		if cfg.MPC.MaxPendingMiB < 0 || cfg.MPC.MaxPendingMiB > 1<<16 {
			return nil, fmt.Errorf("relay: mpc.max_pending_mib %d outside [0, 65536]", cfg.MPC.MaxPendingMiB)
		}
	}
	for _, f := range cfg.Family {
		fp, err := keys.ParseFingerprint(f)
		if err != nil {
			return nil, fmt.Errorf("relay: family: %w", err)
		}
		s.family = append(s.family, fp)
	}
	if _, err := directory.RequirePQFor(cfg.RequirePQSignatures, cfg.Authorities); err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	if cfg.Debug.PprofAddr != "" {
		if _, err := obs.PprofAddr(cfg.Debug.PprofAddr, cfg.Debug.PprofAllowRemote); err != nil {
			return nil, fmt.Errorf("relay: debug.pprof_addr: %w", err)
		}
	}
	if cfg.PublishInterval < 0 {
		return nil, errors.New("relay: publish_interval must not be negative")
	}
	return s, nil
}
