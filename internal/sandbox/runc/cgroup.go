package runc

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/nubis/nubis/internal/sandbox"
)

// cgroupFS reads the accounting of a sandbox's cgroup, on cgroup v1 (or hybrid: the runtime
// uses v1 when /sys/fs/cgroup is not a cgroup2 mount) or v2.
type cgroupFS struct {
	v2     bool
	memory string // v1: the memory controller's mount point; v2: the unified mount
	pids   string // v1: the pids controller's mount point
	cpu    string // v1: the cpu controller's mount point
}

func detectCgroups() (cgroupFS, error) {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil {
		return cgroupFS{}, fmt.Errorf("cgroups: %w", err)
	}
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		return cgroupFS{v2: true, memory: "/sys/fs/cgroup", pids: "/sys/fs/cgroup", cpu: "/sys/fs/cgroup"}, nil
	}
	cg := cgroupFS{}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return cg, fmt.Errorf("cgroups: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		// ... mountpoint ... - cgroup cgroup rw,memory
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 3 || g[0] != "cgroup" {
			continue
		}
		for _, opt := range strings.Split(g[2], ",") {
			switch {
			case opt == "memory" && cg.memory == "":
				cg.memory = f[4]
			case opt == "pids" && cg.pids == "":
				cg.pids = f[4]
			case opt == "cpu" && cg.cpu == "":
				cg.cpu = f[4]
			}
		}
	}
	if cg.memory == "" || cg.pids == "" {
		return cg, fmt.Errorf("cgroups: no v1 memory or pids controller mounted")
	}
	return cg, nil
}

// stats reads the cgroup at path (relative to the hierarchy, as in the OCI spec).
func (cg cgroupFS) stats(path string) (sandbox.Stats, error) {
	var st sandbox.Stats
	var err error
	mem := filepath.Join(cg.memory, path)
	read := func(dir, name string) uint64 {
		if err != nil {
			return 0
		}
		var v uint64
		v, err = readUint(filepath.Join(dir, name))
		return v
	}
	if cg.v2 {
		st.MemoryUsageBytes = read(mem, "memory.current")
		st.MemoryMaxUsageBytes = read(mem, "memory.peak") // Linux 5.19
		st.MemoryLimitBytes = read(mem, "memory.max")
		st.Pids = read(mem, "pids.current")
		if err == nil {
			var events map[string]uint64
			events, err = readKeyed(filepath.Join(mem, "memory.events"))
			st.OOMKilled = events["oom_kill"] > 0
		}
		return st, err
	}
	st.MemoryUsageBytes = read(mem, "memory.usage_in_bytes")
	st.MemoryMaxUsageBytes = read(mem, "memory.max_usage_in_bytes")
	st.MemoryLimitBytes = read(mem, "memory.limit_in_bytes")
	st.Pids = read(filepath.Join(cg.pids, path), "pids.current")
	if err == nil {
		// oom_kill counts the processes the OOM killer killed in this cgroup (Linux 4.13).
		var oom map[string]uint64
		oom, err = readKeyed(filepath.Join(mem, "memory.oom_control"))
		st.OOMKilled = oom["oom_kill"] > 0
	}
	return st, err
}

// readUint reads a file holding one number ("max" reads as 0: no limit).
func readUint(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	s := string(bytes.TrimSpace(b))
	if s == "max" {
		return 0, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

// readKeyed reads a file of "key value" lines.
func readKeyed(path string) (map[string]uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), " "); ok {
			if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil {
				out[k] = n
			}
		}
	}
	return out, nil
}

// setCPUs writes a CPU quota of cpus (none when cpus < 0) into the cgroup at path.
func (cg cgroupFS) setCPUs(path string, cpus float64) error {
	if cg.cpu == "" {
		return fmt.Errorf("cgroups: no cpu controller mounted")
	}
	period, quota := int64(cpuPeriod), int64(-1)
	if cpus > 0 {
		period, quota = cpuQuota(cpus)
	}
	dir := filepath.Join(cg.cpu, path)
	if cg.v2 {
		v := "max"
		if quota > 0 {
			v = strconv.FormatInt(quota, 10)
		}
		return os.WriteFile(filepath.Join(dir, "cpu.max"), []byte(fmt.Sprintf("%s %d", v, period)), 0o644)
	}
	if err := os.WriteFile(filepath.Join(dir, "cpu.cfs_period_us"), []byte(strconv.FormatInt(period, 10)), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "cpu.cfs_quota_us"), []byte(strconv.FormatInt(quota, 10)), 0o644)
}
