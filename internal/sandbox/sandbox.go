// Package sandbox defines how nubis runs untrusted code: a Driver creates isolated Sandboxes from
// a Spec. Services (Lambda, later EC2 container instances) import this package only; the
// implementations live in subpackages (sandbox/runc drives an OCI runtime; a VM driver can follow)
// and all run the shared conformance suite in sandbox/sandboxtest.
//
// A sandbox is created and started in two steps, so that callers can create sandboxes ahead of
// time (a pool) and start one on demand. Sandboxes outlive the nubis process that made them: after
// a restart, List tells which exist, Attach takes one back and Remove deletes one, so that nubis
// reconciles what runs with what its store says and leaves no orphans.
package sandbox

import (
	"context"
	"fmt"
	"io"
	"syscall"
	"time"
)

// Driver creates, finds and removes sandboxes. Implementations are safe for concurrent use.
type Driver interface {
	// Create prepares a sandbox from spec without running the user's process yet: the
	// isolation (namespaces, cgroup, mounts) is set up and the process waits for Start.
	// The id must be unused (errdefs.ErrAlreadyExists otherwise).
	Create(ctx context.Context, spec Spec) (Sandbox, error)
	// Attach returns a sandbox that exists already, typically one created by an earlier nubis
	// process (errdefs.ErrNotFound if there is none). Its output is not reconnected: output
	// that was given to a file keeps going there; output through a pipe ended with that process.
	Attach(ctx context.Context, id string) (Sandbox, error)
	// List returns the ids of the sandboxes that exist, running or not, including the
	// leftovers of ones whose creation was interrupted.
	List(ctx context.Context) ([]string, error)
	// Remove kills every process of the sandbox and deletes it and everything it holds on the
	// host. Removing a sandbox that does not exist is not an error.
	Remove(ctx context.Context, id string) error
}

// Sandbox is one isolated process tree. Its methods are safe for concurrent use.
type Sandbox interface {
	ID() string
	// Start runs the process of a created sandbox.
	Start(ctx context.Context) error
	// Done is closed when the sandbox's main process has exited and its output has been
	// delivered to Spec.Stdout and Spec.Stderr.
	Done() <-chan struct{}
	// ExitStatus tells how the main process ended; meaningful once Done is closed.
	ExitStatus() ExitStatus
	// Stats reads the resource accounting of the sandbox. It works while the sandbox exists,
	// also after its process has exited, until Kill or Remove.
	Stats(ctx context.Context) (Stats, error)
	// SetCPUs changes the sandbox's CPU limit while it runs (cpus as in Spec.CPUs; negative for
	// none), as Lambda's environments start with all the CPU they can get and are limited to their
	// memory's share once the runtime has initialised.
	SetCPUs(ctx context.Context, cpus float64) error
	// Signal sends sig to the sandbox's main process (its init), as `kill` to PID 1 of a
	// machine: a system sandbox's init stops or reboots on it.
	Signal(ctx context.Context, sig syscall.Signal) error
	// Kill sends SIGKILL to every process in the sandbox, waits for them to be gone, and
	// deletes the sandbox (as Driver.Remove). It is idempotent.
	Kill(ctx context.Context) error
}

// Spec describes a sandbox.
type Spec struct {
	// ID names the sandbox: letters, digits, '-', '_' and '.', at most 64 characters.
	ID string
	// RootFS is the root file system, mounted read-only and shared between sandboxes (for
	// example from image.Builder). Mount points (Mounts' destinations, /tmp) must exist in it.
	RootFS string
	// Args is the process to run: Args[0] is an absolute path inside RootFS.
	Args []string
	// Env is the process's environment ("KEY=value"); PATH gets a default if absent.
	Env []string
	// Cwd is the working directory inside the sandbox; "/" when empty.
	Cwd string
	// Hostname is the sandbox's host name (it has its own UTS namespace); "localhost" when empty.
	Hostname string
	// UID and GID are the ids the process runs as; 0 means DefaultUID and DefaultGID (never
	// root: a sandbox has no capabilities and cannot gain any).
	UID, GID int
	// Mounts are bind mounts of host paths, read-only unless Writable.
	Mounts []Mount
	// TmpfsSizeMB is the size of the writable tmpfs at /tmp; DefaultTmpfsSizeMB when 0. Its
	// pages count against the memory limit.
	TmpfsSizeMB int
	// MemoryMB limits memory (no swap); DefaultMemoryMB when 0.
	MemoryMB int
	// PidsLimit limits processes and threads together; DefaultPidsLimit when 0.
	PidsLimit int
	// CPUs is the CPU time allowed, in CPUs (a quota per period, and shares in proportion); 0
	// derives it from MemoryMB as Lambda does (CPUsForMemory); negative means no quota.
	CPUs float64
	// NetNSPath is a network namespace to join (see package netns); empty gives the sandbox a
	// new namespace of its own with no interfaces but a loopback that is down.
	NetNSPath string
	// System makes the sandbox a system container, as an EC2 instance is: its process is an
	// init that runs as UID/GID (root when 0) with Docker's default capabilities, and it and its
	// children may gain privileges (setuid programs such as sudo). RootFS is then writable and
	// must be the sandbox's own (a copy-on-write view of an image); mount points are created in
	// it as needed; /run is a fresh tmpfs; /tmp is part of the root and TmpfsSizeMB is unused.
	System bool
	// Stdout and Stderr receive the process's output; nil discards it. An *os.File (a log
	// file, a pipe) is handed to the process as is and keeps working if nubis restarts (the
	// runtime makes the sandbox's user its owner); any other writer is fed through a pipe by
	// this process, and that output ends with it. When both are the same writer, one pipe
	// carries both and keeps the order of their lines.
	Stdout, Stderr io.Writer
}

// Mount is a bind mount of a host path into a sandbox, always nosuid and nodev.
type Mount struct {
	Source      string // absolute host path
	Destination string // absolute path inside the sandbox; must exist in RootFS
	Writable    bool
	// Slave makes mounts that the host makes under Source later (Source being a shared mount
	// point) appear inside too, as with Docker's rslave bind propagation.
	Slave bool
}

// Defaults for a zero field of Spec.
const (
	// DefaultUID and DefaultGID are the ids of AWS Lambda's sbx_user1051 (993:990), which
	// image.LambdaRuntime also names in its /etc/passwd.
	DefaultUID         = 993
	DefaultGID         = 990
	DefaultTmpfsSizeMB = 512 // Lambda's default ephemeral storage
	DefaultMemoryMB    = 128
	DefaultPidsLimit   = 1024 // Lambda's limit on processes and threads
	// MemoryPerCPU is how much memory buys one CPU on Lambda: 1,769 MB is one vCPU.
	MemoryPerCPU = 1769
)

// CPUsForMemory is Lambda's CPU allocation for a memory size: in proportion to it, one CPU per
// MemoryPerCPU megabytes.
func CPUsForMemory(memoryMB int) float64 {
	return float64(memoryMB) / MemoryPerCPU
}

// ExitStatus is how a sandbox's main process ended.
type ExitStatus struct {
	// Known is false when the status could not be observed: the process was started by an
	// earlier nubis process (only a parent can read an exit status).
	Known bool
	// Code is the exit code; -1 if the process was killed by a signal.
	Code int
	// Signal is the signal that killed the process, or 0.
	Signal syscall.Signal
	// ExitedAt is when the exit was observed.
	ExitedAt time.Time
}

// String reads like Go's os.ProcessState ("exit status 1", "signal: killed"), which is also
// how AWS Lambda reports a runtime's exit ("Runtime exited with error: exit status 1").
func (e ExitStatus) String() string {
	switch {
	case !e.Known:
		return "exit status unknown"
	case e.Signal != 0:
		return "signal: " + e.Signal.String()
	default:
		return fmt.Sprintf("exit status %d", e.Code)
	}
}

// Stats is the resource accounting of a sandbox, from its cgroup.
type Stats struct {
	MemoryUsageBytes    uint64 // now
	MemoryMaxUsageBytes uint64 // the high-water mark since creation
	MemoryLimitBytes    uint64
	// OOMKilled reports that the kernel killed a process of the sandbox for exceeding the
	// memory limit.
	OOMKilled bool
	Pids      uint64 // processes and threads now
}
