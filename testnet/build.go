package testnet

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Binaries are the programs a testnet runs.
var Binaries = []string{"unfed-relay", "dirauth", "unfed-client", "unfed"}

// RepoRoot finds the module root (the directory holding go.mod) from the
// working directory upward.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("testnet: %w", err)
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/unfed/unfed") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("testnet: no go.mod of github.com/unfed/unfed above the working directory")
		}
		dir = parent
	}
}

// Build compiles every binary into outDir with `go build`.
func Build(ctx context.Context, outDir string) error {
	root, err := RepoRoot()
	if err != nil {
		return err
	}
	args := []string{"build", "-o", outDir + string(filepath.Separator)}
	for _, b := range Binaries {
		args = append(args, "./cmd/"+b)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("testnet: go build: %v\n%s", err, out)
	}
	return nil
}

// BinDir returns the directory holding the binaries next to the running
// executable, for `unfed testnet` run from a build directory.
func BinDir() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("testnet: %w", err)
	}
	dir := filepath.Dir(exe)
	for _, b := range Binaries {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			return "", fmt.Errorf("testnet: %s not found next to %s (run `make build`)", b, exe)
		}
	}
	return dir, nil
}

// BuildCheat compiles unfed-relay with the unfedcheat build tag into
// outDir/CheatBinary: the fault-injection relay of spec/11 §6, for tests
// only (Spec.Cheater).
func BuildCheat(ctx context.Context, outDir string) error {
	root, err := RepoRoot()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", "unfedcheat", "-o", filepath.Join(outDir, CheatBinary), "./cmd/unfed-relay")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("testnet: go build -tags unfedcheat: %v\n%s", err, out)
	}
	return nil
}

// CheatClientBinary is the client program built with the unfedcheat tag
// (BuildCheatClient); no release or `make build` produces it.
const CheatClientBinary = "unfed-client-cheat"

// BuildCheatClient compiles unfed-client with the unfedcheat build tag
// into outDir/CheatClientBinary: a client that double-spends with
// UNFED_CHEAT_DOUBLESPEND set (client/paycheat.go), for tests only.
func BuildCheatClient(ctx context.Context, outDir string) error {
	root, err := RepoRoot()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", "unfedcheat", "-o", filepath.Join(outDir, CheatClientBinary), "./cmd/unfed-client")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("testnet: go build -tags unfedcheat: %v\n%s", err, out)
	}
	return nil
}
