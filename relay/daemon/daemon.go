// Package daemon runs an UNFED program's main: load configuration through
// relay/config, build the logger, run under a context canceled by SIGINT or
// SIGTERM, and turn the outcome into an exit code. It is what keeps every
// cmd/ main a few lines long.
package daemon

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/unfed/unfed/relay/config"
	"github.com/unfed/unfed/relay/obs"
)

// Env is what a running program gets besides its configuration.
type Env struct {
	Log    *slog.Logger
	Stdout io.Writer // listening lines and other machine-readable output
	Stderr io.Writer
}

// Announce prints the listening line for a bound listener.
func (e Env) Announce(kind, addr string) { obs.AnnounceListener(e.Stdout, kind, addr) }

// Main loads cfg (a pointer to the program's configuration struct holding its
// defaults) from args and the environment, then calls run under a context
// that SIGINT and SIGTERM cancel. logCfg points into cfg at its logging
// section. It returns the process exit code: 0 on success and on a clean
// shutdown by signal, 2 for a configuration error, 1 for any other error.
func Main(program string, args []string, cfg any, logCfg *obs.LogConfig, run func(ctx context.Context, env Env) error) int {
	if err := config.Load(cfg, args, config.Options{Program: program}); err != nil {
		if errors.Is(err, config.ErrHelp) {
			return 0
		}
		fmt.Fprintf(os.Stderr, "%s: %v\n", program, err)
		return 2
	}
	log, err := obs.NewLogger(os.Stderr, *logCfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", program, err)
		return 2
	}
	log = log.With("prog", program)
	slack, err := gcSlack()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", program, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tuneGC(ctx, slack, log)
	err = run(ctx, Env{Log: log, Stdout: os.Stdout, Stderr: os.Stderr})
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Error("exiting on error", "err", err)
		return 1
	}
	log.Info("clean shutdown")
	return 0
}

// Command is a subcommand of the unfed tool: it parses its own args.
type Command func(ctx context.Context, args []string, stdout, stderr io.Writer) error

// RunCommand runs a subcommand under a signal-canceled context and returns
// the exit code.
func RunCommand(program string, cmd Command, args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cmd(ctx, args, os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(os.Stderr, "%s: %v\n", program, err)
		return 1
	}
	return 0
}
