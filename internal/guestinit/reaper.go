package guestinit

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// reaper is the only code in the init that waits for processes. As PID 1 it reaps every child
// (wait4(-1)): orphans are re-parented to PID 1 and must not stay zombies. Since it takes every
// exit status, nothing else may call wait (exec.Cmd.Wait would race it and lose); processes are
// started through forkExec instead, which registers the child's pid under the same lock the
// reaper holds while it reaps, so no child can be reaped before its waiter is registered.
//
// Outside PID 1 (tests), a reaper made with all=false waits only for the pids it started.
type reaper struct {
	all     bool
	mu      sync.Mutex
	waiters map[int]chan syscall.WaitStatus
	blocked bool // no new processes: the instance is stopping
	sigs    chan os.Signal
	quit    chan struct{}
	done    chan struct{}
}

// newReaper starts the reaping goroutine. With all, it reaps any child (PID 1 or a child
// subreaper); without, only the processes started through it.
func newReaper(all bool) *reaper {
	r := &reaper{
		all:     all,
		waiters: make(map[int]chan syscall.WaitStatus),
		sigs:    make(chan os.Signal, 1),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	signal.Notify(r.sigs, syscall.SIGCHLD)
	go r.loop()
	return r
}

func (r *reaper) loop() {
	defer close(r.done)
	// SIGCHLD is coalesced and the channel holds one: one pending wake-up covers any number of
	// exits, as reap loops until nothing is left. The ticker is a safety net only.
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-r.sigs:
		case <-t.C:
		case <-r.quit:
			return
		}
		r.reap()
	}
}

// stop ends the reaping goroutine (tests; the init's own ends with the process).
func (r *reaper) stop() {
	signal.Stop(r.sigs)
	close(r.quit)
	<-r.done
}

// reap collects every exited child and hands each status to its waiter, if it has one.
func (r *reaper) reap() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.all {
		for pid, ch := range r.waiters {
			var ws syscall.WaitStatus
			got, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
			if got == pid || errors.Is(err, syscall.ECHILD) {
				ch <- ws
				delete(r.waiters, pid)
			}
		}
		return
	}
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
		if ch, ok := r.waiters[pid]; ok {
			ch <- ws
			delete(r.waiters, pid)
		}
	}
}

// forkExec starts a process and returns its pid and a channel that receives its exit status.
func (r *reaper) forkExec(argv0 string, argv []string, attr *syscall.ProcAttr) (int, <-chan syscall.WaitStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.blocked {
		return 0, nil, fmt.Errorf("start %s: %w", argv0, errStopping)
	}
	pid, err := syscall.ForkExec(argv0, argv, attr)
	if err != nil {
		return 0, nil, fmt.Errorf("start %s: %w", argv0, err)
	}
	ch := make(chan syscall.WaitStatus, 1)
	r.waiters[pid] = ch
	return pid, ch, nil
}

// errStopping is the error of starting a process while all are being ended.
var errStopping = errors.New("the instance is shutting down")

// block stops (true) or allows again (false) the start of processes, so that none starts
// after killAll has ended the others.
func (r *reaper) block(b bool) {
	r.mu.Lock()
	r.blocked = b
	r.mu.Unlock()
}

// signalAll sends sig to every other process: as PID 1, kill(-1) reaches every process of the
// instance's PID namespace but the init. Anywhere else that would be every process the user
// may signal, so then only the process groups started through the reaper get it.
func (r *reaper) signalAll(sig syscall.Signal) {
	if os.Getpid() == 1 {
		syscall.Kill(-1, sig)
		return
	}
	r.mu.Lock()
	pids := make([]int, 0, len(r.waiters))
	for pid := range r.waiters {
		pids = append(pids, pid)
	}
	r.mu.Unlock()
	for _, pid := range pids {
		syscall.Kill(-pid, sig) // children are started with setsid: their pid is their group
		syscall.Kill(pid, sig)
	}
}

// hasChildren tells whether any child (running or not yet reaped) is left.
func (r *reaper) hasChildren() bool {
	if r.all {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
		return !errors.Is(err, unix.ECHILD)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.waiters) > 0
}

// waitGone reaps until no child is left or the timeout passes; it reports whether none is left.
// It polls quickly, so a stop whose processes exit promptly takes milliseconds.
func (r *reaper) waitGone(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		r.reap()
		if !r.hasChildren() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// killAll ends every other process: SIGTERM (and SIGCONT, for stopped ones), up to grace for
// them to exit, then SIGKILL for the rest. It reports whether any had to be killed.
func (r *reaper) killAll(grace time.Duration) (killed bool) {
	r.signalAll(syscall.SIGTERM)
	r.signalAll(syscall.SIGCONT)
	if r.waitGone(grace) {
		return false
	}
	r.signalAll(syscall.SIGKILL)
	r.waitGone(2 * time.Second)
	return true
}

// statusText describes an exit status as a short phrase.
func statusText(ws syscall.WaitStatus) string {
	switch {
	case ws.Exited():
		return fmt.Sprintf("exit status %d", ws.ExitStatus())
	case ws.Signaled():
		return fmt.Sprintf("killed by signal %d (%v)", int(ws.Signal()), ws.Signal())
	}
	return fmt.Sprintf("status %#x", uint32(ws))
}

// exitCode is the status as a shell would show it ($?).
func exitCode(ws syscall.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}
