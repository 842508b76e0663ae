package client

// Client bundles (spec/06-model-files.md §5, spec/03-compute.md §3.13): a
// client that holds no model file fetches, on first use of a catalog model,
// its bundle — tokenizer, embedding, final norm, output head and manifest —
// from a relay that serves the model, over a circuit guard → relay, writes
// it to a temporary file in its data directory, verifies every byte against
// the consensus catalog (the manifest's model id and tensor hash root, the
// tensors' and the tokenizer's hashes in the manifest) and only then moves
// it into bundles/<model id>.bundle.gguf. A bundle that does not verify is
// deleted and the next relay is tried.

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/unfed/unfed/compute/model"
	"github.com/unfed/unfed/compute/mpc"
	"github.com/unfed/unfed/compute/tokenizer"
	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/relay/hop"
	"github.com/unfed/unfed/relay/origin"
)

// bundleRelays is how many relays a fetch tries before it gives up.
const bundleRelays = 3

// ErrBundleRefused marks a bundle that did not verify against the catalog.
var ErrBundleRefused = errors.New("client: bundle refused")

// loadBundle opens and verifies the bundle at path on its own (spec/06
// §5.3); matching against the catalog (id and root) happens per consensus
// (localModel.matches).
func loadBundle(path string) (*localModel, error) {
	man, ends, err := model.OpenBundle(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBundleRefused, path, err)
	}
	lm, err := bundleModel(man, ends)
	if err != nil {
		ends.Close()
		return nil, fmt.Errorf("client: bundle %s: %w", path, err)
	}
	return lm, nil
}

func bundleModel(man *model.Manifest, ends *model.Ends) (*localModel, error) {
	root := man.Root()
	lm := &localModel{id: man.IDHex(), root: hex.EncodeToString(root[:]), bundle: true, cfg: man.Config, ends: ends}
	var err error
	if lm.tok, err = tokenizer.FromGGUF(ends.GGUF()); err != nil {
		return nil, err
	}
	if lm.tok.VocabSize() != man.Config.Vocab {
		return nil, fmt.Errorf("tokenizer has %d tokens, model %d", lm.tok.VocabSize(), man.Config.Vocab)
	}
	if lm.mpcCfg, err = mpc.ConfigOf(man.Config); err != nil {
		return nil, err
	}
	return lm, nil
}

// bundlePath is where the verified bundle of model id is cached.
func (b *backend) bundlePath(id string) string {
	return filepath.Join(b.dataDir, "bundles", id+".bundle.gguf")
}

// catalogModel returns the local model for catalog entry m, loading a
// cached bundle or fetching one when the client holds none. It serialises
// fetches; a model found meanwhile is returned at once.
func (b *backend) catalogModel(ctx context.Context, c *directory.Consensus, m *directory.Model) (*localModel, error) {
	b.fetchMu.Lock()
	defer b.fetchMu.Unlock()
	if lm := b.localFor(c, m.ID); lm != nil {
		return lm, nil
	}
	if b.dataDir == "" {
		return nil, fmt.Errorf("client: model %s: no local model and no data directory to fetch its bundle into", m.ID)
	}
	if m.TensorHashRoot == m.ID {
		return nil, fmt.Errorf("%w: the catalog's tensor hash root of model %s is its model id, which does not commit to a tokenizer", ErrBundleRefused, m.ID)
	}
	path := b.bundlePath(m.ID)
	if _, err := os.Stat(path); err == nil {
		lm, err := loadBundle(path)
		if err == nil && lm.matches(m) {
			b.addModel(lm)
			return lm, nil
		}
		if lm != nil {
			lm.ends.Close()
		}
		b.log.Warn("cached bundle does not verify: fetching it again", "model", m.ID, "err", err)
		os.Remove(path)
	}
	lm, err := b.fetchBundle(ctx, c, m)
	if err != nil {
		return nil, err
	}
	b.addModel(lm)
	return lm, nil
}

// localFor returns the local model matching catalog id in c, or nil.
func (b *backend) localFor(c *directory.Consensus, id string) *localModel {
	b.modelsMu.RLock()
	defer b.modelsMu.RUnlock()
	for _, lm := range b.models {
		if m := catalogEntry(c, lm); m != nil && (m.ID == id || m.Name != "" && strings.EqualFold(m.Name, id)) {
			return lm
		}
	}
	return nil
}

func (b *backend) addModel(lm *localModel) {
	b.modelsMu.Lock()
	defer b.modelsMu.Unlock()
	b.models = append(b.models, lm)
}

// models returns the local models held now.
func (b *backend) localModels() []*localModel {
	b.modelsMu.RLock()
	defer b.modelsMu.RUnlock()
	return append([]*localModel(nil), b.models...)
}

// bundleServers lists the relays of c that serve catalog model m in the
// clear (compute relays), which serve its bundle, in random order.
func bundleServers(c *directory.Consensus, m *directory.Model) []*directory.RouterStatus {
	var out []*directory.RouterStatus
	for i := range c.Relays {
		r := &c.Relays[i]
		if usable(r, directory.FlagCompute) && r.Compute != nil && r.Compute.Model == m.ID {
			out = append(out, r)
		}
	}
	rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// fetchBundle fetches m's bundle from up to bundleRelays relays in turn,
// verifies it and caches it.
func (b *backend) fetchBundle(ctx context.Context, c *directory.Consensus, m *directory.Model) (*localModel, error) {
	servers := bundleServers(c, m)
	if len(servers) == 0 {
		return nil, b.unavailable(c, fmt.Sprintf("no relay serves the bundle of model %s now", m.ID))
	}
	if err := os.MkdirAll(filepath.Dir(b.bundlePath(m.ID)), 0o700); err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	var last error
	for i, r := range servers {
		if i == bundleRelays {
			break
		}
		lm, err := b.fetchFrom(ctx, c, m, r)
		if err == nil {
			return lm, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("client: bundle fetch canceled: %w", ctx.Err())
		}
		b.log.Warn("bundle fetch failed", "model", m.ID, "relay", r.Nickname, "err", err)
		last = err
	}
	if errors.Is(last, ErrBundleRefused) {
		b.log.Warn("bundle refused: not cached", "model", m.ID, "err", last)
		return nil, b.unavailable(c, fmt.Sprintf("the bundle of model %s that relays served did not verify against the consensus catalog and was not cached (%v)", m.ID, last))
	}
	return nil, b.unavailable(c, fmt.Sprintf("the bundle of model %s could not be fetched: %v", m.ID, last))
}

// fetchFrom fetches, verifies and caches m's bundle from relay r.
func (b *backend) fetchFrom(ctx context.Context, c *directory.Consensus, m *directory.Model, r *directory.RouterStatus) (*localModel, error) {
	var g *directory.RouterStatus
	var err error
	if b.bridges != nil {
		g, err = b.bridges.choose(ctx)
	} else {
		g, err = b.guards.Choose(c.Relays)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNoGuard, err)
	}
	hops := []*directory.RouterStatus{g, r}
	if g.Fingerprint == r.Fingerprint {
		hops = hops[:1]
	}
	bctx, cancel := context.WithTimeout(ctx, b.cfg.BuildTimeout)
	circ, err := b.dialer.buildCircuit(bctx, &Path{Hops: hops, Mode: ModeAnonymous}, b.cfg.Hybrid)
	cancel()
	if err != nil {
		return nil, err
	}
	defer circ.Destroy()
	tmp, err := os.CreateTemp(filepath.Dir(b.bundlePath(m.ID)), ".fetch-*")
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	defer os.Remove(tmp.Name()) // after the rename, a no-op
	if err := b.download(ctx, circ, hops, m.ID, tmp); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	lm, err := loadBundle(tmp.Name())
	if err != nil {
		return nil, err
	}
	if !lm.matches(m) {
		lm.ends.Close()
		return nil, fmt.Errorf("%w: relay %s sent the bundle of model %s (root %s), the catalog lists %s (root %s)",
			ErrBundleRefused, r.Nickname, lm.id, lm.root, m.ID, m.TensorHashRoot)
	}
	// The open file stays valid across the rename.
	if err := os.Rename(tmp.Name(), b.bundlePath(m.ID)); err != nil {
		lm.ends.Close()
		return nil, fmt.Errorf("client: %w", err)
	}
	b.log.Info("bundle verified and cached", "model", m.ID, "bytes", fileSize(b.bundlePath(m.ID)))
	return lm, nil
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// download reads the bundle of model id from the last of hops into f,
// hop.MaxBundleRead bytes per BUNDLE_GET, logging progress every tenth.
func (b *backend) download(ctx context.Context, circ *origin.Circuit, hops []*directory.RouterStatus, id string, f *os.File) error {
	s := &session{c: circ, timeout: b.cfg.StepTimeout, path: &Path{Hops: hops}}
	pos := len(hops) - 1
	var off, total int64 = 0, -1
	nextReport := int64(0)
	for total < 0 || off < total {
		if err := s.send(ctx, pos, &hop.BundleGet{Offset: off, Length: hop.MaxBundleRead, ModelID: id}); err != nil {
			return err
		}
		end := off + hop.MaxBundleRead
		for off < end && (total < 0 || off < total) {
			from, msg, err := s.recv(ctx)
			if err != nil {
				return err
			}
			d, ok := msg.(*hop.BundleData)
			switch {
			case !ok || from != pos:
				return fmt.Errorf("client: bundle: hop %d sent %v", from, msg.Type())
			case d.Offset != off || (total >= 0 && d.Total != total) || len(d.Data) == 0 && d.Offset < d.Total:
				return fmt.Errorf("client: bundle: bytes at %d of %d, want %d", d.Offset, d.Total, off)
			case total < 0 && d.Total > b.cfg.MaxBundleBytes:
				return fmt.Errorf("client: bundle of %d bytes exceeds circuit.max_bundle_bytes (%d)", d.Total, b.cfg.MaxBundleBytes)
			}
			total = d.Total
			if _, err := f.Write(d.Data); err != nil {
				return fmt.Errorf("client: %w", err)
			}
			off += int64(len(d.Data))
			if off >= nextReport {
				b.log.Info("fetching bundle", "model", id, "bytes", off, "total", total, "percent", 100*off/max(total, 1))
				nextReport = off + max(total/10, 1)
			}
		}
	}
	return nil
}
