package runc

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/nubis/nubis/internal/errdefs"
	"github.com/nubis/nubis/internal/sandbox"
)

var idRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// cpuPeriod is the CFS period for the CPU quota, in microseconds: short, so that a sandbox that has
// used its share waits at most a few milliseconds for the next period (with the kernel's default
// of 100 ms, a Lambda environment of 128 MB, 7 % of a CPU, waited up to 93 ms).
const cpuPeriod = 10_000

// cpuQuota returns the CFS period and quota, in microseconds, that give cpus CPUs: cpuPeriod,
// longer when needed for the quota to reach the kernel's minimum of 1 ms.
func cpuQuota(cpus float64) (period, quota int64) {
	period = cpuPeriod
	if p := int64(math.Ceil(1000 / cpus)); p > period {
		period = min(p, 1_000_000) // the kernel's maximum period is 1 s
	}
	return period, max(int64(math.Round(cpus*float64(period))), 1000)
}

// validate checks a spec and fills in its defaults.
func validate(s sandbox.Spec) (sandbox.Spec, error) {
	bad := func(format string, args ...any) (sandbox.Spec, error) {
		return s, fmt.Errorf("sandbox %s: %s: %w", s.ID, fmt.Sprintf(format, args...), errdefs.ErrInvalidArgument)
	}
	if !idRE.MatchString(s.ID) {
		return bad("id must be 1-64 letters, digits, '_', '-' or '.'")
	}
	if !filepath.IsAbs(s.RootFS) {
		return bad("root file system %q is not an absolute path", s.RootFS)
	}
	if fi, err := os.Stat(s.RootFS); err != nil || !fi.IsDir() {
		return bad("root file system %q is not a directory", s.RootFS)
	}
	if len(s.Args) == 0 || s.Args[0] == "" {
		return bad("no process to run")
	}
	if s.Cwd == "" {
		s.Cwd = "/"
	}
	if !filepath.IsAbs(s.Cwd) {
		return bad("working directory %q is not absolute", s.Cwd)
	}
	if s.Hostname == "" {
		s.Hostname = "localhost"
	}
	if s.UID == 0 && !s.System {
		s.UID = sandbox.DefaultUID
	}
	if s.GID == 0 && !s.System {
		s.GID = sandbox.DefaultGID
	}
	if s.UID < 0 || s.GID < 0 {
		return bad("negative uid or gid")
	}
	if s.TmpfsSizeMB == 0 {
		s.TmpfsSizeMB = sandbox.DefaultTmpfsSizeMB
	}
	if s.MemoryMB == 0 {
		s.MemoryMB = sandbox.DefaultMemoryMB
	}
	if s.PidsLimit == 0 {
		s.PidsLimit = sandbox.DefaultPidsLimit
	}
	if s.TmpfsSizeMB < 0 || s.MemoryMB < 0 || s.PidsLimit < 0 {
		return bad("negative size or limit")
	}
	if s.MemoryMB < 6 {
		return bad("memory %d MB is too small to start a process", s.MemoryMB)
	}
	if s.CPUs == 0 {
		s.CPUs = sandbox.CPUsForMemory(s.MemoryMB)
	}
	if s.NetNSPath != "" && !filepath.IsAbs(s.NetNSPath) {
		return bad("network namespace path %q is not absolute", s.NetNSPath)
	}
	if !slices.ContainsFunc(s.Env, func(e string) bool { return strings.HasPrefix(e, "PATH=") }) {
		s.Env = append(slices.Clone(s.Env), defaultPath)
	}
	// Mount points must exist: the root is shared and read-only, so the runtime must not
	// create them in it. A system sandbox's root is its own and writable.
	points := []string{"/tmp"}
	if s.System {
		points = nil
	}
	for _, m := range s.Mounts {
		if !filepath.IsAbs(m.Source) || !filepath.IsAbs(m.Destination) || filepath.Clean(m.Destination) == "/" {
			return bad("mount %s -> %s: paths must be absolute, and not onto /", m.Source, m.Destination)
		}
		if _, err := os.Stat(m.Source); err != nil {
			return bad("mount source %s: %v", m.Source, err)
		}
		points = append(points, m.Destination)
	}
	for _, p := range points {
		if s.System {
			break
		}
		if _, err := os.Stat(filepath.Join(s.RootFS, p)); err != nil {
			return bad("mount point %s does not exist in the root file system", p)
		}
	}
	return s, nil
}

// systemCaps are the capabilities of a system sandbox's init: Docker's default set, enough for
// sshd (chroot, setuid), sudo, ping and file ownership, and nothing that reaches the host (no
// SYS_ADMIN, NET_ADMIN, SYS_MODULE, SYS_PTRACE, AUDIT_CONTROL...).
var systemCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// ociSpec is the OCI runtime configuration of a sandbox (validated with validate).
func ociSpec(s sandbox.Spec, cgroupsPath string) *specs.Spec {
	memory := int64(s.MemoryMB) << 20
	pids := int64(s.PidsLimit)
	// Shares in proportion to the CPUs, 1024 for one CPU (the kernel's range is 2 to 262144).
	cpus := s.CPUs
	if cpus < 0 {
		cpus = 1
	}
	shares := uint64(min(max(math.Round(cpus*1024), 2), 262144))
	cpu := &specs.LinuxCPU{Shares: &shares}
	if s.CPUs > 0 {
		p, quota := cpuQuota(s.CPUs)
		period := uint64(p)
		cpu.Period, cpu.Quota = &period, &quota
	}
	empty := []string{}
	oomScoreAdj := 1000 // under host memory pressure, sandboxes go before nubis
	namespaces := []specs.LinuxNamespace{
		{Type: specs.PIDNamespace},
		{Type: specs.IPCNamespace},
		{Type: specs.UTSNamespace},
		{Type: specs.MountNamespace},
		{Type: specs.NetworkNamespace, Path: s.NetNSPath},
	}

	mounts := []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
	}
	if s.System {
		// /run as a machine has it; its size counts against the memory limit.
		mounts = append(mounts, specs.Mount{Destination: "/run", Type: "tmpfs", Source: "tmpfs",
			Options: []string{"nosuid", "nodev", "mode=755", "size=65536k"}})
	} else {
		mounts = append(mounts, specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs",
			Options: []string{"nosuid", "nodev", "mode=1777", fmt.Sprintf("size=%dm", s.TmpfsSizeMB)}})
	}
	for _, m := range s.Mounts {
		opts := []string{"bind", "nosuid", "nodev", "ro"}
		if m.Writable {
			opts[3] = "rw"
		}
		if m.Slave {
			opts = append(opts, "rslave")
		}
		mounts = append(mounts, specs.Mount{Destination: m.Destination, Type: "bind", Source: m.Source, Options: opts})
	}

	// No capabilities in any set, and no way to gain one (setuid binaries, file caps).
	caps := &specs.LinuxCapabilities{Bounding: empty, Effective: empty, Inheritable: empty, Permitted: empty, Ambient: empty}
	nofile := specs.POSIXRlimit{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}
	if s.System {
		caps = &specs.LinuxCapabilities{Bounding: systemCaps, Effective: systemCaps, Permitted: systemCaps}
		// As many open files as a machine allows by default, within what nubis itself may give
		// (raising a hard limit needs CAP_SYS_RESOURCE, which the container does not have).
		hard := uint64(524288)
		var lim unix.Rlimit
		if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) == nil && lim.Max < hard {
			hard = lim.Max
		}
		nofile = specs.POSIXRlimit{Type: "RLIMIT_NOFILE", Hard: hard, Soft: min(1024, hard)}
	}
	spec := &specs.Spec{
		Version:  specs.Version,
		Hostname: s.Hostname,
		Root:     &specs.Root{Path: s.RootFS, Readonly: !s.System},
		Process: &specs.Process{
			Args:            s.Args,
			Env:             s.Env,
			Cwd:             s.Cwd,
			User:            specs.User{UID: uint32(s.UID), GID: uint32(s.GID)},
			Capabilities:    caps,
			NoNewPrivileges: !s.System,
			Rlimits:         []specs.POSIXRlimit{nofile},
			OOMScoreAdj:     &oomScoreAdj,
		},
		Mounts: mounts,
		Linux: &specs.Linux{
			CgroupsPath: cgroupsPath,
			Namespaces:  namespaces,
			Resources: &specs.LinuxResources{
				// Deny every device; the runtime adds its standard allow-list (null, zero, full,
				// random, urandom, tty, ptmx).
				Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
				// Swap is memory plus swap on cgroup v1 (memsw): equal to the limit means none.
				Memory: &specs.LinuxMemory{Limit: &memory, Swap: &memory},
				Pids:   &specs.LinuxPids{Limit: &pids},
				CPU:    cpu,
			},
			Seccomp: defaultSeccomp(s.System),
			// As runc's default spec, plus the paths containerd masks today.
			MaskedPaths: []string{
				"/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
				"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
				"/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
			},
			ReadonlyPaths: []string{
				"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
			},
		},
	}
	return spec
}
