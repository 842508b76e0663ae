package testnet

import (
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// sleeper waits for a forwarder on a timerfd of its own, read through the
// runtime's netpoller: the kernel's timer wakes it to the microsecond (not
// the whole milliseconds of Go's timers, see sleepUntil), and it holds no P
// while it waits, so other forwarders read and write meanwhile however many
// chunks are due at once. nil (no timerfd: a kernel before 2.6.25) falls
// back to sleepUntil. The testnet runs on Linux only (proc.go).
type sleeper struct {
	f  *os.File
	fd int
}

func newSleeper() *sleeper {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil
	}
	// Non-blocking: the File reads through the netpoller.
	return &sleeper{f: os.NewFile(uintptr(fd), "timerfd"), fd: fd}
}

// until returns at t, or at once if t has passed.
func (s *sleeper) until(t time.Time) {
	if s == nil {
		sleepUntil(t)
		return
	}
	d := time.Until(t)
	if d <= 0 {
		return
	}
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(int64(d))}
	if err := unix.TimerfdSettime(s.fd, 0, &spec, nil); err != nil {
		sleepUntil(t)
		return
	}
	var n [8]byte // the expiry count
	if _, err := s.f.Read(n[:]); err != nil {
		sleepUntil(t)
	}
}

func (s *sleeper) close() {
	if s != nil {
		s.f.Close()
	}
}

// sleepUntil returns at t, or at once if t has passed: what a sleeper does
// without its timerfd. It sleeps on a
// runtime timer until sleepHeld before t, then in the kernel (nanosleep):
// Go's timers wake through epoll_pwait, whose timeout is in whole
// milliseconds, so a time.Sleep of 9.7 ms returns 0.2–1 ms late on an idle
// machine — per crossing of an emulated link, several milliseconds per
// token of a circuit. But a goroutine in nanosleep keeps its P until sysmon
// takes it back, which an idle sysmon does only every 10 ms: when all the
// harness's Ps slept so, no forwarder read or wrote anything meanwhile. With
// whole waits in nanosleep, any moment with more chunks in flight than Ps
// (the authorities' measurements, the client building its next circuit
// while a token crossed) delayed every link by up to 10 ms at a time:
// stalls of 100–400 ms and first tokens 10 ms slow (docs/PERFORMANCE.md).
func sleepUntil(t time.Time) {
	if d := time.Until(t) - sleepHeld; d > 0 {
		time.Sleep(d)
	}
	for {
		d := time.Until(t)
		if d <= 0 {
			return
		}
		ts := syscall.NsecToTimespec(int64(d))
		if err := syscall.Nanosleep(&ts, nil); err != nil && err != syscall.EINTR {
			time.Sleep(time.Until(t)) // not expected; never spin
			return
		}
	}
}

// sleepHeld is the most of a wait that sleepUntil spends in nanosleep: more
// than a runtime timer's lateness.
const sleepHeld = 1500 * time.Microsecond
