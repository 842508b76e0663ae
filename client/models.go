package client

// Local models: the client holds, for every model it may use, the model file
// itself. From it come the tokenizer, the shape of the confidential stages,
// the embedding and output head it computes itself (spec/10 §6) and the
// manifest id (compute/model, spec/06-model-files.md) that must match the
// consensus catalog entry, so a relay cannot make us decode against another
// vocabulary than the one the model was trained with.

import (
	"errors"
	"fmt"
	"os"

	"github.com/unfed/unfed/compute/gguf"
	"github.com/unfed/unfed/compute/model"
	"github.com/unfed/unfed/compute/mpc"
	"github.com/unfed/unfed/compute/tokenizer"
	"github.com/unfed/unfed/directory"
)

// ModelConfig names one local model.
type ModelConfig struct {
	Path      string `mapstructure:"path" doc:"Model file (GGUF or llama2.c); its manifest id must match the consensus catalog."`
	Bundle    string `mapstructure:"bundle" doc:"Client bundle (unfed model bundle) instead of a model file; its manifest must match the catalog's model id and tensor hash root."`
	Tokenizer string `mapstructure:"tokenizer" doc:"Tokenizer file (llama2.c tokenizer.bin); empty reads the tokenizer from the GGUF model file."`
}

// maxTokenizerFile bounds a llama2.c tokenizer file we read.
const maxTokenizerFile = 64 << 20

// localModel is what the client knows of a model from its own copy.
type localModel struct {
	id     string // manifest id, lowercase hex
	root   string // bundles: the manifest's tensor hash root, lowercase hex
	bundle bool   // from a bundle: the catalog must list both id and root
	cfg    model.Config
	tok    *tokenizer.Tokenizer
	mpcCfg mpc.Config
	ends   *model.Ends // embedding, final norm, output head
}

// loadModel reads mc's tokenizer, hyperparameters and manifest id.
func loadModel(mc ModelConfig) (*localModel, error) {
	switch {
	case mc.Bundle != "" && mc.Path != "":
		return nil, errors.New("client: a model names a path or a bundle, not both")
	case mc.Bundle != "":
		return loadBundle(mc.Bundle)
	}
	man, err := model.ComputeManifest(mc.Path, 0)
	if err != nil {
		return nil, fmt.Errorf("client: model %s: %w", mc.Path, err)
	}
	lm := &localModel{id: man.IDHex(), cfg: man.Config}
	if lm.tok, err = loadTokenizer(mc, man.Config.Vocab); err != nil {
		return nil, err
	}
	if lm.tok.VocabSize() != man.Config.Vocab {
		return nil, fmt.Errorf("client: model %s: tokenizer has %d tokens, model %d", mc.Path, lm.tok.VocabSize(), man.Config.Vocab)
	}
	if lm.mpcCfg, err = mpc.ConfigOf(man.Config); err != nil {
		return nil, fmt.Errorf("client: model %s: %w", mc.Path, err)
	}
	if lm.ends, err = model.LoadEnds(mc.Path); err != nil {
		return nil, fmt.Errorf("client: model %s: %w", mc.Path, err)
	}
	return lm, nil
}

func loadTokenizer(mc ModelConfig, vocab int) (*tokenizer.Tokenizer, error) {
	if mc.Tokenizer == "" {
		f, err := gguf.Open(mc.Path)
		if err != nil {
			return nil, fmt.Errorf("client: model %s: tokenizer: %w (set tokenizer for llama2.c models)", mc.Path, err)
		}
		defer f.Close()
		tok, err := tokenizer.FromGGUF(f)
		if err != nil {
			return nil, fmt.Errorf("client: model %s: %w", mc.Path, err)
		}
		return tok, nil
	}
	fi, err := os.Stat(mc.Tokenizer)
	if err != nil {
		return nil, fmt.Errorf("client: tokenizer: %w", err)
	}
	if fi.Size() > maxTokenizerFile {
		return nil, errors.New("client: tokenizer file too large")
	}
	f, err := os.Open(mc.Tokenizer)
	if err != nil {
		return nil, fmt.Errorf("client: tokenizer: %w", err)
	}
	defer f.Close()
	tok, err := tokenizer.FromLlama2C(f, vocab)
	if err != nil {
		return nil, fmt.Errorf("client: tokenizer %s: %w", mc.Tokenizer, err)
	}
	return tok, nil
}

// matches reports whether catalog entry m is this model: its id or its
// tensor hash root is our manifest id.
//
// A bundle holds only part of the model, so its manifest must be the one the
// catalog commits to: the model id and the tensor hash root (spec/06 §5.3),
// which covers the tokenizer the bundle decodes with.
func (lm *localModel) matches(m *directory.Model) bool {
	if lm.bundle {
		return m.ID == lm.id && m.TensorHashRoot == lm.root
	}
	return m.ID == lm.id || m.TensorHashRoot == lm.id
}
