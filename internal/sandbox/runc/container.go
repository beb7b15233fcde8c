package runc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nubis/nubis/internal/errdefs"
	"github.com/nubis/nubis/internal/sandbox"
	"github.com/nubis/nubis/internal/sandbox/revert"
)

// createTimeout bounds `runc create`, which is not cancelled by the caller's context: a runtime
// killed half-way could leave its container's init behind.
const createTimeout = time.Minute

// Create writes the bundle and creates the container; its process waits for Start.
func (d *Driver) Create(ctx context.Context, spec sandbox.Spec) (sandbox.Sandbox, error) {
	s, err := validate(spec)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rev := revert.New()
	defer rev.Fail()

	bundle := d.bundle(s.ID)
	if err := os.Mkdir(bundle, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("sandbox %s: %w", s.ID, errdefs.ErrAlreadyExists)
		}
		return nil, fmt.Errorf("sandbox %s: bundle: %w", s.ID, err)
	}
	rev.Add(func() { os.RemoveAll(bundle) })
	config, err := json.MarshalIndent(ociSpec(s, d.cgroupsPath(s.ID)), "", "  ")
	if err != nil {
		return nil, fmt.Errorf("sandbox %s: config: %w", s.ID, err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), config, 0o600); err != nil {
		return nil, fmt.Errorf("sandbox %s: config: %w", s.ID, err)
	}

	c := newContainer(d, s.ID, d.cgroupsPath(s.ID))
	stdout, stderr, err := c.stdio(s.Stdout, s.Stderr)
	if err != nil {
		return nil, err
	}
	rev.Add(c.closeStdio)

	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), createTimeout)
	defer cancel()
	pidFile := filepath.Join(bundle, "init.pid")
	cmd := d.command(cctx, "--log", filepath.Join(bundle, "runtime.log"), "--log-format", "json",
		"create", "--bundle", bundle, "--pid-file", pidFile, s.ID)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	runErr := cmd.Run()
	c.closeWriteEnds() // the container holds its own copies now
	if runErr != nil {
		// runc cleans up a failed create itself; delete in case it got far enough to register.
		d.run(context.WithoutCancel(ctx), "delete", "--force", s.ID)
		return nil, fmt.Errorf("sandbox %s: create: %w%s", s.ID, runErr, runtimeLogTail(filepath.Join(bundle, "runtime.log")))
	}
	pid := 0
	rev.Add(func() {
		d.run(context.WithoutCancel(ctx), "delete", "--force", s.ID)
		if pid > 0 { // the init is this process's child: reap it
			var ws unix.WaitStatus
			unix.Wait4(pid, &ws, 0, nil)
		}
	})
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return nil, fmt.Errorf("sandbox %s: pid file: %w", s.ID, err)
	}
	if pid, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil || pid <= 0 {
		pid = 0
		return nil, fmt.Errorf("sandbox %s: pid file %q: %w", s.ID, b, errors.Join(err, errdefs.ErrUnavailable))
	}
	pidfd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("sandbox %s: watch pid %d: %w", s.ID, pid, err)
	}
	c.watch(pid, pidfd)
	rev.Success()
	d.log.Debug("sandbox created", "id", s.ID, "pid", pid)
	return c, nil
}

// runtimeLogTail returns the last error messages of a runtime's JSON log, for an error message.
func runtimeLogTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var msgs []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var e struct{ Level, Msg string }
		if json.Unmarshal([]byte(line), &e) == nil && (e.Level == "error" || e.Level == "fatal") {
			msgs = append(msgs, e.Msg)
		}
	}
	if len(msgs) > 3 {
		msgs = msgs[len(msgs)-3:]
	}
	if len(msgs) == 0 {
		return ""
	}
	return ": " + strings.Join(msgs, "; ")
}

// container is a sandbox.Sandbox run by the runtime.
type container struct {
	d      *Driver
	id     string
	cgroup string // the cgroups path of its config.json

	done   chan struct{}
	status sandbox.ExitStatus // set before done is closed

	// Output pipes: read ends copied by goroutines counted in copying; write ends given to runc.
	pipes     []*os.File
	writeEnds []*os.File
	copying   sync.WaitGroup

	killMu sync.Mutex
	killed bool
}

var _ sandbox.Sandbox = (*container)(nil)

func newContainer(d *Driver, id, cgroup string) *container {
	return &container{d: d, id: id, cgroup: cgroup, done: make(chan struct{})}
}

func (c *container) ID() string { return c.id }

func (c *container) Done() <-chan struct{} { return c.done }

func (c *container) ExitStatus() sandbox.ExitStatus {
	select {
	case <-c.done:
		return c.status
	default:
		return sandbox.ExitStatus{}
	}
}

// Start runs the process of a created container.
func (c *container) Start(ctx context.Context) error {
	if _, err := c.d.run(ctx, "start", c.id); err != nil {
		return fmt.Errorf("sandbox %s: start: %w", c.id, err)
	}
	return nil
}

// Signal sends sig to the container's init.
func (c *container) Signal(ctx context.Context, sig syscall.Signal) error {
	if _, err := c.d.run(ctx, "kill", c.id, strconv.Itoa(int(sig))); err != nil {
		return fmt.Errorf("sandbox %s: signal %v: %w", c.id, sig, err)
	}
	return nil
}

// killWait bounds how long Kill waits for a sandbox's init to be reaped.
const killWait = 10 * time.Second

// Kill kills every process and deletes the container and its bundle.
func (c *container) Kill(ctx context.Context) error {
	c.killMu.Lock()
	defer c.killMu.Unlock()
	if c.killed {
		return nil
	}
	if _, err := c.d.run(ctx, "kill", "--all", c.id, "KILL"); err != nil {
		// Already stopped, or never started (some runtimes, such as runsc, refuse to signal a
		// created container): delete --force below ends it either way.
		c.d.log.Debug("kill", "id", c.id, "err", err)
	} else {
		select {
		case <-c.done:
		case <-ctx.Done():
			return fmt.Errorf("sandbox %s: wait for the processes to die: %w", c.id, ctx.Err())
		case <-time.After(killWait):
		}
	}
	if err := c.d.Remove(ctx, c.id); err != nil {
		return err
	}
	select {
	case <-c.done:
	case <-ctx.Done():
		return fmt.Errorf("sandbox %s: wait for the processes to die: %w", c.id, ctx.Err())
	case <-time.After(killWait):
		return fmt.Errorf("sandbox %s: its init did not exit within %v of being deleted", c.id, killWait)
	}
	c.killed = true
	return nil
}

// Stats reads the container's cgroup.
func (c *container) Stats(ctx context.Context) (sandbox.Stats, error) {
	st, err := c.d.cgroups.stats(c.cgroup)
	if err != nil {
		return st, fmt.Errorf("sandbox %s: stats: %w", c.id, err)
	}
	return st, nil
}

func (c *container) SetCPUs(ctx context.Context, cpus float64) error {
	if err := c.d.cgroups.setCPUs(c.cgroup, cpus); err != nil {
		return fmt.Errorf("sandbox %s: set CPUs: %w", c.id, err)
	}
	return nil
}

// stdio returns the files to give runc as stdout and stderr for the Spec's writers.
func (c *container) stdio(stdout, stderr io.Writer) (out, errOut *os.File, err error) {
	if stdout != nil && stdout == stderr && reflect.TypeOf(stdout).Comparable() {
		// One writer for both: one pipe keeps the order of the lines.
		f, err := c.fileFor(stdout)
		return f, f, err
	}
	if out, err = c.fileFor(stdout); err != nil {
		return nil, nil, err
	}
	if errOut, err = c.fileFor(stderr); err != nil {
		return nil, nil, err
	}
	return out, errOut, nil
}

func (c *container) fileFor(w io.Writer) (*os.File, error) {
	switch w := w.(type) {
	case nil:
		f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			return nil, fmt.Errorf("sandbox %s: %w", c.id, err)
		}
		c.writeEnds = append(c.writeEnds, f)
		return f, nil
	case *os.File:
		return w, nil
	default:
		r, pw, err := os.Pipe()
		if err != nil {
			return nil, fmt.Errorf("sandbox %s: output pipe: %w", c.id, err)
		}
		c.pipes = append(c.pipes, r)
		c.writeEnds = append(c.writeEnds, pw)
		c.copying.Add(1)
		go func() {
			defer c.copying.Done()
			io.Copy(w, r)
			r.Close()
		}()
		return pw, nil
	}
}

func (c *container) closeWriteEnds() {
	for _, f := range c.writeEnds {
		f.Close()
	}
	c.writeEnds = nil
}

// closeStdio undoes stdio after a failed create.
func (c *container) closeStdio() {
	c.closeWriteEnds()
	for _, r := range c.pipes {
		r.Close()
	}
}

// watch waits, in the background, for the init process behind pidfd to exit, reaps it if it is
// this process's child, waits for its output to be copied, and closes done.
func (c *container) watch(pid, pidfd int) {
	f := os.NewFile(uintptr(pidfd), "pidfd")
	go func() {
		defer f.Close()
		// The pidfd becomes readable when the process exits.
		exited := func(fd uintptr, timeout int) bool {
			fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			n, err := unix.Poll(fds, timeout)
			return (err != nil && !errors.Is(err, unix.EINTR)) || n > 0
		}
		rc, err := f.SyscallConn()
		if err == nil {
			// Go's poller calls the callback again each time the pidfd may be ready.
			err = rc.Read(func(fd uintptr) bool { return exited(fd, 0) })
		}
		if err != nil { // not in the poller: block a thread instead
			for !exited(uintptr(pidfd), -1) {
			}
		}
		st := sandbox.ExitStatus{Code: -1}
		var ws unix.WaitStatus
		for {
			_, err := unix.Wait4(pid, &ws, 0, nil)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err == nil {
				st.Known = true
				if ws.Signaled() {
					st.Signal = syscall.Signal(ws.Signal())
				} else {
					st.Code = ws.ExitStatus()
				}
			}
			break // ECHILD: not our child (attached after a restart)
		}
		st.ExitedAt = time.Now()
		c.copying.Wait()
		c.exited(st)
	}()
}

func (c *container) exited(st sandbox.ExitStatus) {
	c.status = st
	close(c.done)
}
