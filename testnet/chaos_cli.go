package testnet

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"go.yaml.in/yaml/v3"
)

// cmdChaos implements `unfed testnet chaos`: a fresh testnet of the chaos
// shape (a spare of every role), the chaos suite on it, the report on
// stdout, every node stopped. It fails when the run found a violation.
func cmdChaos(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	fs := flag.NewFlagSet("testnet chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "testnet-run/chaos", "directory for every node's state, configs and logs (emptied first)")
	modelFlag := fs.String("model", "", "model file (default: stories260K.gguf from $UNFED_MODEL_DIR, the cache, or a download)")
	var o ChaosOptions
	fs.Uint64Var(&o.Seed, "seed", 1, "seed of the fault plan (a failed run replays with its seed)")
	fs.DurationVar(&o.Duration, "duration", 5*time.Minute, "length of the fault phase")
	fs.IntVar(&o.Sessions, "sessions", 8, "concurrent load sessions")
	fs.IntVar(&o.MaxTokens, "max-tokens", 8, "tokens per greedy completion")
	fs.IntVar(&o.Flood, "flood", 1000, "descriptors in the flood of the first authority")
	fs.Int64Var(&o.RSSLimitMiB, "rss-limit", 512, "bound on every daemon's peak RSS, MiB")
	if err := fs.Parse(args); err != nil {
		return err
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return fmt.Errorf("testnet: %w", err)
	}
	if err := os.RemoveAll(abs); err != nil {
		return fmt.Errorf("testnet: %w", err)
	}
	model, err := ResolveModel(ctx, *modelFlag, filepath.Join(abs, "models"), stderr)
	if err != nil {
		return err
	}
	bin, err := BinDir()
	if err != nil {
		return err
	}
	n, err := Generate(Spec{Dir: abs, BinDir: bin, Model: model, Guards: 2, Replicas: 2, Parties: 3, Dealers: 3,
		Interval: 4 * time.Second, Client: true})
	if err != nil {
		return err
	}
	if err := PatientAuthorities(n); err != nil {
		return err
	}
	defer func() {
		if stopErr := n.StopAll(15 * time.Second); stopErr != nil && err == nil {
			err = stopErr
		}
	}()
	fmt.Fprintf(stderr, "testnet: starting %d nodes in %s\n", len(n.Nodes), abs)
	if err := n.Start(ctx, false, stderr); err != nil {
		return err
	}
	o.Log = stderr
	rep, err := Chaos(ctx, n, o)
	if rep != nil {
		fmt.Fprint(stdout, rep.Summary())
	}
	if err != nil {
		return err
	}
	if len(rep.Violations) > 0 {
		return fmt.Errorf("testnet: chaos seed %d: %d violations (replay with --seed %d)", o.Seed, len(rep.Violations), o.Seed)
	}
	return nil
}

// PatientAuthorities gives the authorities of a generated network a vote
// phase of 2 s, a distribution phase of 1 s and 750 ms per reachability
// probe: on a machine whose cores every relay shares a link handshake can
// take longer than a quarter of a 1 s vote delay, and a relay whose probe
// fails is left out of the next consensus.
func PatientAuthorities(n *Network) error {
	for _, node := range n.Nodes {
		if node.Kind != "dirauth" {
			continue
		}
		raw, err := os.ReadFile(node.Config)
		if err != nil {
			return fmt.Errorf("testnet: %w", err)
		}
		var cfg map[string]any
		if err := yaml.Unmarshal(raw, &cfg); err != nil {
			return fmt.Errorf("testnet: %s: %w", node.Config, err)
		}
		if cfg == nil {
			return errors.New("testnet: empty authority config")
		}
		cfg["vote_delay"], cfg["dist_delay"], cfg["probe_timeout"] = "2s", "1s", "750ms"
		if err := writeConfig(node.Config, cfg); err != nil {
			return err
		}
	}
	return nil
}
