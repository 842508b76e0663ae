package keys

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/unfed/unfed/relay/daemon"
)

// KeygenCommand implements `unfed keygen --data-dir DIR`: it creates the
// node's keys when missing (loading them otherwise) and prints the
// fingerprint. Existing keys are never replaced.
func KeygenCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := daemon.NewFlagSet("keygen", "[flags]", stderr)
	dataDir := fs.String("data-dir", "", "data directory that holds (or will hold) the keys")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	if *dataDir == "" {
		return errors.New("keygen: --data-dir is required")
	}
	s, err := Open(*dataDir, Options{})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, s.Identity().Fingerprint())
	return nil
}
