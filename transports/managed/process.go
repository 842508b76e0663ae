package managed

// PT process lifetime: exec with the PT environment → stdout lines parsed,
// setup lines handed to the caller until "… DONE" → afterwards LOG/STATUS lines
// and stderr go to the logger → the process ends when its context ends: stdin
// is closed (TOR_PT_EXIT_ON_STDIN_CLOSE=1), and after waitDelay it is killed.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/unfed/unfed/transports/base"
)

const (
	setupTimeout = 30 * time.Second
	waitDelay    = 3 * time.Second
	maxSetupLine = 64
)

type process struct {
	cmd    *exec.Cmd
	cancel context.CancelFunc
	lines  chan Line // setup lines, closed when stdout ends
	exited chan struct{}
	log    *slog.Logger
}

// startProcess runs the PT binary with env added to ours (minus any
// inherited TOR_PT_ variables). The process lives until ctx is done or stop.
func startProcess(ctx context.Context, pc base.PTConfig, env []string, log *slog.Logger) (*process, error) {
	if pc.Path == "" {
		return nil, errors.New("managed: no PT binary configured")
	}
	if !validMethod(pc.Method) {
		return nil, fmt.Errorf("managed: bad PT method name %q", pc.Method)
	}
	pctx, cancel := context.WithCancel(ctx)
	cmd := exec.CommandContext(pctx, pc.Path, pc.Args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TOR_PT_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "TOR_PT_MANAGED_TRANSPORT_VER=1", "TOR_PT_EXIT_ON_STDIN_CLOSE=1")
	cmd.Env = append(cmd.Env, env...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		cancel()
		return nil, fmt.Errorf("managed: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		return nil, fmt.Errorf("managed: %w", err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		cancel()
		return nil, fmt.Errorf("managed: %w", err)
	}
	// Graceful first: a PT exits when its stdin closes; WaitDelay later it is
	// killed.
	cmd.Cancel = func() error { return stdin.Close() }
	cmd.WaitDelay = waitDelay
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("managed: start %s: %w", pc.Path, err)
	}
	p := &process{cmd: cmd, cancel: cancel, lines: make(chan Line, maxSetupLine), exited: make(chan struct{}), log: log.With("pt", pc.Method)}
	go p.readStderr(stderr)
	go p.readStdout(stdout)
	go func() {
		err := cmd.Wait()
		p.log.Debug("pluggable transport exited", "err", err)
		close(p.exited)
	}()
	p.log.Info("pluggable transport started", "path", pc.Path, "pid", cmd.Process.Pid)
	return p, nil
}

func (p *process) readStdout(r io.Reader) {
	defer close(p.lines)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxLineLen+1)
	setup := true
	for sc.Scan() {
		l, err := ParseLine(sc.Text())
		if err != nil {
			p.log.Warn("pluggable transport wrote a bad line", "err", err)
			if setup {
				// A PT we cannot understand during setup is not usable.
				p.stop()
				return
			}
			continue
		}
		switch {
		case l.Kind == KindLog:
			p.log.Info("pluggable transport", "msg", l.Msg)
		case l.Kind == KindOther:
		case setup:
			select {
			case p.lines <- l:
			default:
				p.log.Warn("pluggable transport wrote too many setup lines")
				p.stop()
				return
			}
			if l.Kind == KindCmethodsDone || l.Kind == KindSmethodsDone {
				setup = false
			}
		}
	}
	if err := sc.Err(); err != nil {
		p.log.Warn("pluggable transport stdout", "err", err)
	}
	// Keep draining so the PT never blocks on a full pipe.
	_, _ = io.Copy(io.Discard, r)
}

func (p *process) readStderr(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxLineLen)
	for sc.Scan() {
		p.log.Info("pluggable transport stderr", "line", sc.Text())
	}
	_, _ = io.Copy(io.Discard, r)
}

// setup collects setup lines until the DONE line, an error line, the process
// exiting, or the timeout.
func (p *process) setup(ctx context.Context, onLine func(Line) (done bool, err error)) error {
	t := time.NewTimer(setupTimeout)
	defer t.Stop()
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				return errors.New("managed: PT exited during setup")
			}
			done, err := onLine(l)
			if err != nil {
				return err
			}
			if done {
				return nil
			}
		case <-t.C:
			return errors.New("managed: PT setup timed out")
		case <-ctx.Done():
			return fmt.Errorf("managed: PT setup: %w", ctx.Err())
		}
	}
}

// stop ends the process (stdin closed, then killed after waitDelay) and
// waits for it.
func (p *process) stop() {
	p.cancel()
}

func (p *process) wait() { <-p.exited }

// commonSetupError turns the error lines both sides may see into errors.
func commonSetupError(l Line) error {
	switch l.Kind {
	case KindVersionError:
		return fmt.Errorf("managed: PT supports no common version: %s", l.Msg)
	case KindEnvError:
		return fmt.Errorf("managed: PT environment error: %s", l.Msg)
	case KindProxyError:
		return fmt.Errorf("managed: PT proxy error: %s", l.Msg)
	case KindVersion:
		if l.Version != "1" {
			return fmt.Errorf("managed: PT chose version %q, we speak 1", l.Version)
		}
	}
	return nil
}
