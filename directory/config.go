package directory

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/unfed/unfed/relay/keys"
)

// AuthorityConfig configures a directory authority (cmd/dirauth).
type AuthorityConfig struct {
	// DataDir holds the authority's keys and its last consensus.
	DataDir string `mapstructure:"data_dir" doc:"Directory for keys and the last consensus (created mode 0700)."`
	// Listen is the HTTP listen address; ":0" picks a port.
	Listen string `mapstructure:"listen" doc:"HTTP listen address for the directory protocol (host:port, :0 picks a port)."`
	// Authorities lists every authority of the network, this one included.
	Authorities []AuthorityEntry `mapstructure:"authorities" doc:"Every directory authority of the network, this one included."`
	// Interval is the voting period; a whole number of seconds, at least 2s.
	Interval time.Duration `mapstructure:"interval" doc:"Voting interval (whole seconds; an hour in production, seconds in a testnet)."`
	// VoteDelay is the vote exchange phase; 0 means a quarter of Interval.
	VoteDelay time.Duration `mapstructure:"vote_delay" doc:"Length of the vote exchange phase (whole seconds; 0 means interval/4)."`
	// DistDelay is the signature exchange phase; 0 means a quarter of Interval.
	DistDelay time.Duration `mapstructure:"dist_delay" doc:"Length of the signature exchange phase (whole seconds; 0 means interval/4)."`
	// ProbeTimeout bounds each probing phase (the probes, then the
	// measurements); 0 means half the room between the previous period's
	// publication and this period's vote phase, and at least VoteDelay/4
	// (schedule.go). Each probe's own round trips are bounded by its
	// measured round-trip time (relay.LinkProber), not by this.
	ProbeTimeout time.Duration `mapstructure:"probe_timeout" doc:"Bound of each probing phase, probes then measurements (0 means half of interval - vote_delay - dist_delay - 0.5s, at least vote_delay/4)."`
	// Params are the network parameters this authority votes for.
	Params map[string]int64 `mapstructure:"params" doc:"Network parameters this authority votes for (name: integer)."`
	// Models is the model catalog this authority votes for.
	Models []ModelConfig `mapstructure:"models" doc:"Model catalog entries this authority votes for."`
	// RequirePQ makes the authority require ML-DSA-65 signatures on votes and
	// consensuses even when the pq-signatures parameter is 0.
	RequirePQ bool `mapstructure:"require_pq" doc:"Require ML-DSA-65 signatures from every authority, whatever the parameters say."`
	// MeasureEvery is how many periods pass between two measurements of
	// one relay (spec §6.3); 0 means 1, every period. Reachability is
	// probed every period regardless.
	MeasureEvery int `mapstructure:"measure_every" doc:"Measure each relay's weight every this many voting periods (0 means 1: every period); reachability is probed every period."`
	// SigningKeyLifetime, when set, makes the authority sign with a signing
	// key it certifies with its identity and renews (spec §8.4).
	SigningKeyLifetime time.Duration `mapstructure:"signing_key_lifetime" doc:"Sign with a medium-term signing key certified by the identity key, renewed when a quarter of this lifetime is left (0: sign with the identity key)."`
	// OfflineIdentity makes the authority sign with the signing key and
	// certificate in its data directory, never loading an identity key.
	OfflineIdentity bool `mapstructure:"offline_identity" doc:"The identity key is kept offline: sign with keys/authority_signing.key and its certificate (made by unfed authority certify)."`
	// MaxRelays bounds how many relay descriptors the authority holds; 0 means 50000.
	MaxRelays int `mapstructure:"max_relays" doc:"Most relay descriptors held at once (0 means 50000)."`

	// MaxRelaysPerAddr bounds how many relays with an address on one IP
	// the authority holds (and so votes); 0 means 2, as Tor's
	// AuthDirMaxServersPerAddr; negative means no bound (testnets on one
	// loopback address).
	MaxRelaysPerAddr int `mapstructure:"max_relays_per_addr" doc:"Most relays held per IP address (0 means 2; negative means no bound, for testnets)."`
	// UploadRate is how many descriptor uploads per second one source
	// address may make, sustained; 0 means 0.2 (one every 5 s).
	UploadRate float64 `mapstructure:"upload_rate" doc:"Descriptor uploads per second allowed per source address, sustained (0 means 0.2)."`
	// UploadBurst is how many uploads a source may make at once; 0 means 20.
	UploadBurst int `mapstructure:"upload_burst" doc:"Descriptor uploads a source address may make in a burst (0 means 20)."`
	// DropUnreachableAfter is how many consecutive failed probes make the
	// authority forget a relay's descriptor; 0 means 3.
	DropUnreachableAfter int `mapstructure:"drop_unreachable_after" doc:"Forget a relay after this many consecutive failed reachability probes (0 means 3)."`

	// Prober tests relay reachability; nil means a TCP connect (TCPProber).
	Prober Prober `mapstructure:"-"`
	// MintKeys returns the public keys of the authority's mint valid at
	// the given time (its current and next epoch, spec/12 §2.1), listed in
	// its votes; nil: the authority runs no mint.
	MintKeys func(now time.Time) []MintKey `mapstructure:"-"`
	// Mount, when set, adds handlers (the mint's API, the share-chain's)
	// to the authority's HTTP server; it gets the authority, whose Current
	// consensus they may use.
	Mount func(a *Authority, mux *http.ServeMux) `mapstructure:"-"`
	// OnFraud, when set, is called with the relay and the proof after
	// each fraud proof the authority verified (JudgeProof): the share-chain
	// slashes the relay (spec/12 §7.2). It must not block for long.
	OnFraud func(relay keys.Fingerprint, proof []byte) `mapstructure:"-"`
	// StakeOf, when set, returns the stake relay fp has locked on the
	// share-chain the authority follows (spec/12 §7.1): the authority then
	// votes Compute and MPC only for relays with at least the stake
	// parameter's amount. nil: no stake is required.
	StakeOf func(fp keys.Fingerprint) uint64 `mapstructure:"-"`
	// Now is the clock; nil means time.Now.
	Now func() time.Time `mapstructure:"-"`
	// HTTPClient talks to the other authorities; nil means a client with
	// per-request deadlines from the schedule.
	HTTPClient *http.Client `mapstructure:"-"`
}

// ModelConfig is one model catalog entry.
type ModelConfig struct {
	// ID is the model id relays name in their compute and mpc lines.
	ID string `mapstructure:"id" doc:"Model id."`
	// Architecture is the model family, e.g. llama or qwen2.
	Architecture string `mapstructure:"architecture" doc:"Architecture, e.g. llama or qwen2."`
	// Layers is the number of transformer layers.
	Layers int `mapstructure:"layers" doc:"Number of transformer layers."`
	// Shards are the layer ranges relays serve; they must tile [0, Layers).
	Shards []ShardConfig `mapstructure:"shards" doc:"Shard layer ranges, tiling [0, layers)."`
	// TensorHashRoot is the manifest's root hash, 64 lower-case hex digits.
	TensorHashRoot string `mapstructure:"tensor_hash_root" doc:"Root hash of the model's tensor manifest (64 hex digits)."`
	// Name is the model's short human name; empty for none.
	Name string `mapstructure:"name" doc:"Short human name of the model (a DNS label, e.g. stories260K); clients accept it in place of the id and as <name>.unfed."`
	// File is the model file the authority re-executes fraud proofs with
	// (spec/11 §5.2); empty: it judges no proofs about this model.
	File string `mapstructure:"file" doc:"Model file (GGUF) for re-executing fraud proofs; empty: judge no proofs about this model."`
}

// ShardConfig is a layer range [First, Last).
type ShardConfig struct {
	// First is the first layer of the shard.
	First int `mapstructure:"first" doc:"First layer (inclusive)."`
	// Last is one past the last layer of the shard.
	Last int `mapstructure:"last" doc:"Last layer (exclusive)."`
}

// model converts and checks a catalog entry.
func (m ModelConfig) model() (Model, error) {
	out := Model{ID: m.ID, Architecture: m.Architecture, Layers: m.Layers, TensorHashRoot: m.TensorHashRoot, Name: m.Name}
	if m.Name != "" && !ValidModelName(m.Name) {
		return out, fmt.Errorf("directory: model %s: bad name %q (a DNS label: 1-63 letters, digits and '-')", clip(m.ID), clip(m.Name))
	}
	for _, s := range m.Shards {
		out.Shards = append(out.Shards, LayerRange(s))
	}
	if !validName(m.ID) || !validName(m.Architecture) || m.Layers <= 0 || m.Layers > maxLayers ||
		len(m.TensorHashRoot) != 64 || !isLowerHex(m.TensorHashRoot) || len(m.Shards) > maxShards {
		return out, fmt.Errorf("directory: model %q: bad id, architecture, layer count or tensor hash root", clip(m.ID))
	}
	if err := checkShards(&out); err != nil {
		return out, fmt.Errorf("directory: model %s: %w", m.ID, err)
	}
	return out, nil
}

// normalize fills defaults and checks the schedule.
func (c *AuthorityConfig) normalize() error {
	if c.Interval < 2*time.Second || c.Interval%time.Second != 0 {
		return errors.New("directory: interval must be a whole number of seconds, at least 2s")
	}
	if c.VoteDelay == 0 {
		c.VoteDelay = (c.Interval / 4).Truncate(time.Second)
	}
	if c.DistDelay == 0 {
		c.DistDelay = (c.Interval / 4).Truncate(time.Second)
	}
	if c.VoteDelay < time.Second || c.DistDelay < time.Second || c.VoteDelay%time.Second != 0 ||
		c.DistDelay%time.Second != 0 || c.VoteDelay+c.DistDelay > c.Interval {
		return errors.New("directory: vote_delay and dist_delay must be whole seconds >= 1s that fit in the interval together")
	}
	if c.ProbeTimeout <= 0 {
		c.ProbeTimeout = defaultProbeTimeout(c.Interval, c.VoteDelay, c.DistDelay)
	}
	if c.MeasureEvery <= 0 {
		c.MeasureEvery = 1
	}
	if c.MaxRelays <= 0 {
		c.MaxRelays = 50000
	}
	if c.MaxRelaysPerAddr == 0 {
		c.MaxRelaysPerAddr = 2
	}
	if c.UploadRate <= 0 {
		c.UploadRate = 0.2
	}
	if c.UploadBurst <= 0 {
		c.UploadBurst = 20
	}
	if c.DropUnreachableAfter <= 0 {
		c.DropUnreachableAfter = 3
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Prober == nil {
		c.Prober = TCPProber{Timeout: c.ProbeTimeout}
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: c.Interval}
	}
	for k := range c.Params {
		if !validName(k) {
			return fmt.Errorf("directory: bad parameter name %q", clip(k))
		}
	}
	if len(c.Params) > maxParams || len(c.Models) > maxModels {
		return errors.New("directory: too many parameters or models")
	}
	return nil
}
