package directory

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/viper"
)

// maxTestnetConfigs bounds the node directories testnetAuthorities reads.
const maxTestnetConfigs = 256

// configAuthorities returns the authorities list of a daemon configuration
// file (YAML, or TOML by a .toml name); ok is false when b is not such a
// file or lists none.
func configAuthorities(path string, b []byte) (entries []AuthorityEntry, ok bool) {
	v := viper.New()
	v.SetConfigType("yaml")
	if strings.HasSuffix(strings.ToLower(path), ".toml") {
		v.SetConfigType("toml")
	}
	if err := v.ReadConfig(bytes.NewReader(b)); err != nil {
		return nil, false
	}
	if err := v.UnmarshalKey("authorities", &entries); err != nil || len(entries) == 0 {
		return nil, false
	}
	return entries, true
}

// parseAuthorities reads trusted authorities from b: a daemon configuration
// file with an authorities list, or else authority lines
// (parseAuthorityLines).
func parseAuthorities(path string, b []byte) (AuthoritySet, error) {
	entries, ok := configAuthorities(path, b)
	if !ok {
		return parseAuthorityLines(path, b)
	}
	set, err := NewAuthoritySet(entries, false)
	if err != nil {
		return AuthoritySet{}, fmt.Errorf("directory: %s: %w", path, err)
	}
	return set, nil
}

// testnetAuthorities reads the authorities of the testnet in dir (as
// `unfed testnet up` writes it): the client's configuration, else the first
// node configuration that lists them.
func testnetAuthorities(dir string) (AuthoritySet, error) {
	candidates := []string{filepath.Join(dir, "client", "config.yaml")}
	more, err := filepath.Glob(filepath.Join(dir, "*", "config.yaml"))
	if err != nil {
		return AuthoritySet{}, fmt.Errorf("directory: %w", err)
	}
	sort.Strings(more)
	candidates = append(candidates, more[:min(len(more), maxTestnetConfigs)]...)
	for _, p := range candidates {
		b, err := readSource(context.Background(), p, "", 1<<20)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return AuthoritySet{}, err
		}
		if _, ok := configAuthorities(p, b); ok {
			return parseAuthorities(p, b)
		}
	}
	return AuthoritySet{}, fmt.Errorf("directory: no configuration listing authorities under %s (is it a testnet directory?)", dir)
}

// fetchFromAuthorities fetches the current consensus from the first of the
// authorities that answers.
func fetchFromAuthorities(ctx context.Context, set AuthoritySet) ([]byte, error) {
	var errs []error
	for _, a := range set.Authorities {
		if a.Address == "" {
			continue
		}
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		b, err := readSource(actx, "http://"+a.Address, PathConsensus, MaxConsensusSize)
		cancel()
		if err == nil {
			return b, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", a.Name, err))
	}
	return nil, fmt.Errorf("directory: no authority served a consensus: %w", errors.Join(errs...))
}
