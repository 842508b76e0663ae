// Package testnet starts and stops whole UNFED networks of real processes on
// 127.0.0.1: the harness every end-to-end test uses and the engine behind
// `unfed testnet`. Tor's chutney and tailscale's integration harness are its
// models: build the binaries once, run each node in its own directory, find
// its listeners from the `listening kind=… addr=…` lines it prints, and
// insist on clean shutdown.
package testnet

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Proc is one running node process.
type Proc struct {
	Name string
	Dir  string // the node's directory: data, config, logs
	cmd  *exec.Cmd

	mu        sync.Mutex // guards listeners
	listeners map[string]string
	changed   chan struct{} // closed and replaced when listeners change

	done    chan struct{} // closed when the process has exited
	exitErr error
}

// StartProc starts bin with args in dir (created if needed), logging its
// stdout and stderr to dir/stdout.log and dir/stderr.log. The process dies
// with its parent.
func StartProc(name, bin string, args []string, dir string, env []string) (*Proc, error) {
	return startProc(name, bin, args, dir, env, false)
}

// StartDetached is StartProc for a process that outlives its parent (used by
// `unfed testnet up`); `unfed testnet down` stops it.
func StartDetached(name, bin string, args []string, dir string, env []string) (*Proc, error) {
	return startProc(name, bin, args, dir, env, true)
}

func startProc(name, bin string, args []string, dir string, env []string, detached bool) (*Proc, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("testnet: %w", err)
	}
	stdoutLog, err := os.OpenFile(filepath.Join(dir, "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("testnet: %w", err)
	}
	stderrLog, err := os.OpenFile(filepath.Join(dir, "stderr.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		stdoutLog.Close()
		return nil, fmt.Errorf("testnet: %w", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = stderrLog
	// Stdout goes straight to its log file, which is tailed for listening
	// lines, so a detached process never writes into a closed pipe.
	cmd.Stdout = stdoutLog
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if !detached {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	out, err := os.Open(stdoutLog.Name())
	if err != nil {
		stdoutLog.Close()
		stderrLog.Close()
		return nil, fmt.Errorf("testnet: %w", err)
	}
	if st, err := out.Stat(); err == nil {
		out.Seek(st.Size(), io.SeekStart)
	}
	if err := cmd.Start(); err != nil {
		out.Close()
		stdoutLog.Close()
		stderrLog.Close()
		return nil, fmt.Errorf("testnet: starting %s: %w", name, err)
	}
	p := &Proc{Name: name, Dir: dir, cmd: cmd, listeners: map[string]string{}, changed: make(chan struct{}), done: make(chan struct{})}
	exited := make(chan struct{})
	go func() {
		p.scan(out, exited)
		out.Close()
	}()
	go func() {
		err := cmd.Wait()
		close(exited)
		p.exitErr = err
		stdoutLog.Close()
		stderrLog.Close()
		close(p.done)
	}()
	return p, nil
}

// tailReader reads a growing file until exited is closed and the end is
// reached.
type tailReader struct {
	f      *os.File
	exited <-chan struct{}
}

func (t tailReader) Read(b []byte) (int, error) {
	for {
		n, err := t.f.Read(b)
		if n > 0 || (err != nil && err != io.EOF) {
			return n, err
		}
		select {
		case <-t.exited:
			// One last read after exit catches the final lines.
			n, err := t.f.Read(b)
			if n > 0 {
				return n, nil
			}
			if err == nil {
				err = io.EOF
			}
			return 0, err
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (p *Proc) scan(f *os.File, exited <-chan struct{}) {
	r := tailReader{f, exited}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		kind, addr, ok := ParseListeningLine(sc.Text())
		if !ok {
			continue
		}
		p.mu.Lock()
		p.listeners[kind] = addr
		close(p.changed)
		p.changed = make(chan struct{})
		p.mu.Unlock()
	}
}

// ParseListeningLine parses `listening kind=K addr=A`.
func ParseListeningLine(line string) (kind, addr string, ok bool) {
	rest, found := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if !found {
		return "", "", false
	}
	for _, f := range strings.Fields(rest) {
		if v, ok := strings.CutPrefix(f, "kind="); ok {
			kind = v
		} else if v, ok := strings.CutPrefix(f, "addr="); ok {
			addr = v
		}
	}
	return kind, addr, kind != "" && addr != ""
}

// Listener returns the address of the listener of the given kind, or "".
func (p *Proc) Listener(kind string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.listeners[kind]
}

// WaitListening waits until the process has announced a listener of every
// given kind, and returns them.
func (p *Proc) WaitListening(ctx context.Context, kinds ...string) (map[string]string, error) {
	for {
		p.mu.Lock()
		got := map[string]string{}
		missing := []string{}
		for _, k := range kinds {
			if a, ok := p.listeners[k]; ok {
				got[k] = a
			} else {
				missing = append(missing, k)
			}
		}
		changed := p.changed
		p.mu.Unlock()
		if len(missing) == 0 {
			return got, nil
		}
		select {
		case <-changed:
		case <-p.done:
			return nil, fmt.Errorf("testnet: %s exited (%v) before listening on %s; see %s", p.Name, p.exitErr, strings.Join(missing, ","), filepath.Join(p.Dir, "stderr.log"))
		case <-ctx.Done():
			return nil, fmt.Errorf("testnet: %s: waiting for listeners %s: %w", p.Name, strings.Join(missing, ","), ctx.Err())
		}
	}
}

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Pid returns the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// ErrUncleanExit is returned by Stop when a process did not exit with code 0
// after SIGTERM.
var ErrUncleanExit = errors.New("testnet: unclean exit")

// Stop sends SIGTERM and waits up to timeout for a clean exit (code 0). A
// process still running then is killed and ErrUncleanExit returned.
func (p *Proc) Stop(timeout time.Duration) error {
	if p.Exited() {
		if p.exitErr != nil {
			return fmt.Errorf("%w: %s had already exited: %v", ErrUncleanExit, p.Name, p.exitErr)
		}
		return nil
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if p.exitErr != nil {
			return fmt.Errorf("%w: %s: %v; see %s", ErrUncleanExit, p.Name, p.exitErr, filepath.Join(p.Dir, "stderr.log"))
		}
		return nil
	case <-time.After(timeout):
		p.Kill()
		return fmt.Errorf("%w: %s did not exit within %s of SIGTERM", ErrUncleanExit, p.Name, timeout)
	}
}

// Kill kills the process (and its process group) at once, as kill -9 does,
// and waits for it.
func (p *Proc) Kill() {
	if p.Exited() {
		return
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// Wait waits for the process to exit and returns its error.
func (p *Proc) Wait() error {
	<-p.done
	return p.exitErr
}
