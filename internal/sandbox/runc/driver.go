// Package runc is the sandbox driver that runs each sandbox as an OCI container under runc (or a
// compatible runtime with the same command line: crun, runsc).
//
// Nubis writes the bundle (config.json through the runtime-spec Go types) under its state dir and
// gives the runtime its own --root there, so that nubis's containers are its own and survive a
// restart of nubis: containers are always created detached (runc create, then runc start), so no
// runc process stays behind per sandbox.
//
// Output. With detach and no terminal, runc hands its own stdin, stdout and stderr to the
// container's process, so the driver starts runc with the sandbox's output already in place: an
// *os.File given in the Spec (a log file survives a restart of nubis), or the write end of a
// pipe whose read end nubis copies into the Spec's writer (that output ends with the nubis process
// that reads it: the next write gets EPIPE). Stdin is /dev/null.
//
// Exit status. The driver makes the nubis process a child subreaper (PR_SET_CHILD_SUBREAPER), as
// containerd's shim does: when `runc create` exits, the container's init process is re-parented
// to nubis, which can then wait for it and read its exit status. It watches each init through a
// pidfd in Go's network poller (no thread blocked per sandbox). A sandbox taken back with Attach
// after a restart is not nubis's child: its end is still seen, its exit status is not. Being a
// subreaper has one duty for the rest of nubis: a process of its own that orphans a grandchild
// (a daemonising tool) leaves that grandchild to nubis to reap, so such tools are best avoided.
package runc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nubis/nubis/internal/errdefs"
	"github.com/nubis/nubis/internal/sandbox"
)

// Config configures a Driver.
type Config struct {
	// Runtime is the OCI runtime binary; "runc" (from PATH or /usr/sbin) when empty.
	Runtime string
	// StateDir holds the runtime's state (StateDir/runc, its --root) and the bundles
	// (StateDir/bundles/<id>). Required; for example <data-dir>/sandboxes.
	StateDir string
	// CgroupParent is the cgroup under which each sandbox gets its own (<parent>/<id>);
	// "nubis" when empty.
	CgroupParent string
	// Log receives the driver's messages; slog.Default() when nil.
	Log *slog.Logger
}

// Driver is a sandbox.Driver backed by an OCI runtime. It is safe for concurrent use.
type Driver struct {
	runtime      string
	root         string // the runtime's --root
	bundles      string
	cgroupParent string
	cgroups      cgroupFS
	log          *slog.Logger
}

var _ sandbox.Driver = (*Driver)(nil)

// New checks the runtime and prepares the state dir. It makes this process a child subreaper
// (see the package documentation).
func New(ctx context.Context, cfg Config) (*Driver, error) {
	if cfg.StateDir == "" || !filepath.IsAbs(cfg.StateDir) {
		return nil, fmt.Errorf("runc driver: state dir %q must be an absolute path: %w", cfg.StateDir, errdefs.ErrInvalidArgument)
	}
	rt := cfg.Runtime
	if rt == "" {
		rt = "runc"
	}
	path, err := exec.LookPath(rt)
	if err != nil && !strings.Contains(rt, "/") {
		path, err = exec.LookPath(filepath.Join("/usr/sbin", rt))
	}
	if err != nil {
		return nil, fmt.Errorf("runc driver: runtime %s: %w", rt, err)
	}
	d := &Driver{
		runtime:      path,
		root:         filepath.Join(cfg.StateDir, "runc"),
		bundles:      filepath.Join(cfg.StateDir, "bundles"),
		cgroupParent: cfg.CgroupParent,
		log:          cfg.Log,
	}
	if d.cgroupParent == "" {
		d.cgroupParent = "nubis"
	}
	if d.log == nil {
		d.log = slog.Default()
	}
	d.log = d.log.With("component", "sandbox", "runtime", filepath.Base(path))
	for _, dir := range []string{d.root, d.bundles} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("runc driver: %w", err)
		}
	}
	if d.cgroups, err = detectCgroups(); err != nil {
		return nil, fmt.Errorf("runc driver: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return nil, fmt.Errorf("runc driver: become a child subreaper: %w", err)
	}
	if _, err := d.run(ctx, "--version"); err != nil {
		return nil, fmt.Errorf("runc driver: %w", err)
	}
	return d, nil
}

// Runtime is the path of the OCI runtime binary in use.
func (d *Driver) Runtime() string { return d.runtime }

func (d *Driver) bundle(id string) string { return filepath.Join(d.bundles, id) }

func (d *Driver) cgroupsPath(id string) string { return "/" + d.cgroupParent + "/" + id }

// run runs the runtime with args and returns its standard output; the error carries its
// standard error.
func (d *Driver) run(ctx context.Context, args ...string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, d.runtime, append([]string{"--root", d.root}, args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%s %s: %w: %s", filepath.Base(d.runtime), strings.Join(args, " "), err,
			strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// state is the part of `runc state` the driver uses.
type state struct {
	ID      string `json:"id"`
	Pid     int    `json:"pid"`
	Status  string `json:"status"` // creating, created, running, paused, stopped
	Bundle  string `json:"bundle"`
	Created time.Time
}

// exists tells whether the runtime knows the container id.
func (d *Driver) exists(ctx context.Context, id string) (bool, error) {
	ids, err := d.runtimeList(ctx)
	if err != nil {
		return false, err
	}
	return slices.Contains(ids, id), nil
}

func (d *Driver) state(ctx context.Context, id string) (state, error) {
	var st state
	ok, err := d.exists(ctx, id)
	if err != nil {
		return st, err
	}
	if !ok {
		return st, fmt.Errorf("sandbox %s: %w", id, errdefs.ErrNotFound)
	}
	out, err := d.run(ctx, "state", id)
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return st, fmt.Errorf("sandbox %s: runtime state: %w", id, err)
	}
	return st, nil
}

func (d *Driver) runtimeList(ctx context.Context) ([]string, error) {
	// What `runc list` reads, without its failure when a container is deleted while it lists:
	// one directory with a state.json per container under the runtime's --root.
	entries, err := os.ReadDir(d.root)
	if err != nil {
		return nil, fmt.Errorf("runtime list: %w", err)
	}
	ids := make([]string, 0, len(entries))
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if _, err := os.Stat(filepath.Join(d.root, e.Name(), "state.json")); err == nil {
			ids = append(ids, e.Name())
		}
	}
	return ids, nil
}

// List returns the sandboxes the runtime knows and the bundles left without one.
func (d *Driver) List(ctx context.Context) ([]string, error) {
	ids, err := d.runtimeList(ctx)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(d.bundles)
	if err != nil {
		return nil, fmt.Errorf("list bundles: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() && !slices.Contains(ids, e.Name()) {
			ids = append(ids, e.Name())
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// Remove kills and deletes a sandbox by id, whoever created it.
func (d *Driver) Remove(ctx context.Context, id string) error {
	if !idRE.MatchString(id) {
		return fmt.Errorf("sandbox %q: %w", id, errdefs.ErrInvalidArgument)
	}
	ok, err := d.exists(ctx, id)
	if err != nil {
		return err
	}
	if ok {
		// Every process, not only the init (with a PID namespace of its own the others would
		// die with it anyway, but a sandbox joining another's would not).
		if _, err := d.run(ctx, "kill", "--all", id, "KILL"); err != nil {
			d.log.Debug("kill before delete", "id", id, "err", err)
		}
		if _, err := d.run(ctx, "delete", "--force", id); err != nil {
			if still, err2 := d.exists(ctx, id); err2 != nil || still {
				return fmt.Errorf("remove sandbox %s: %w", id, err)
			}
		}
	}
	if err := os.RemoveAll(d.bundle(id)); err != nil {
		return fmt.Errorf("remove sandbox %s: %w", id, err)
	}
	return nil
}

// Attach returns a sandbox that exists already (see sandbox.Driver).
func (d *Driver) Attach(ctx context.Context, id string) (sandbox.Sandbox, error) {
	if !idRE.MatchString(id) {
		return nil, fmt.Errorf("sandbox %q: %w", id, errdefs.ErrInvalidArgument)
	}
	st, err := d.state(ctx, id)
	if err != nil {
		return nil, err
	}
	// Its cgroup is the one its bundle names (a driver with another CgroupParent may have made it).
	cgroup := d.cgroupsPath(id)
	if b, err := os.ReadFile(filepath.Join(d.bundle(id), "config.json")); err == nil {
		var cfg struct {
			Linux struct {
				CgroupsPath string `json:"cgroupsPath"`
			} `json:"linux"`
		}
		if json.Unmarshal(b, &cfg) == nil && cfg.Linux.CgroupsPath != "" {
			cgroup = cfg.Linux.CgroupsPath
		}
	}
	c := newContainer(d, id, cgroup)
	if st.Status == "stopped" || st.Pid <= 0 {
		c.exited(sandbox.ExitStatus{Known: false, Code: -1, ExitedAt: time.Now()})
		return c, nil
	}
	pidfd, err := unix.PidfdOpen(st.Pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			c.exited(sandbox.ExitStatus{Known: false, Code: -1, ExitedAt: time.Now()})
			return c, nil
		}
		return nil, fmt.Errorf("sandbox %s: watch pid %d: %w", id, st.Pid, err)
	}
	// The pid may have been reused between the state and the pidfd: check it still is the init.
	if again, err := d.state(ctx, id); err != nil || again.Pid != st.Pid || again.Status == "stopped" {
		unix.Close(pidfd)
		c.exited(sandbox.ExitStatus{Known: false, Code: -1, ExitedAt: time.Now()})
		return c, nil
	}
	c.watch(st.Pid, pidfd)
	return c, nil
}

// command is an exec.Cmd of the runtime with the driver's --root.
func (d *Driver) command(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, d.runtime, append([]string{"--root", d.root}, args...)...)
}
