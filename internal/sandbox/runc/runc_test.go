package runc

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/nubis/nubis/internal/sandbox"
	"github.com/nubis/nubis/internal/sandbox/sandboxtest"
)

func haveRuntime(t *testing.T) {
	t.Helper()
	sandboxtest.NeedRoot(t)
	_, err := exec.LookPath("runc")
	if err != nil {
		_, err = os.Stat("/usr/sbin/runc")
	}
	sandboxtest.Need(t, err == nil, "runc is not installed (apt-get install runc)")
}

var (
	stateMu   sync.Mutex
	stateDirs = map[*testing.T]string{}
)

// newDriver returns a driver whose state dir is shared by every driver of the same test
// (sandboxtest.Run's contract), and removes leftovers at the end.
func newDriver(t *testing.T) sandbox.Driver {
	t.Helper()
	haveRuntime(t)
	stateMu.Lock()
	dir, ok := stateDirs[t]
	if !ok {
		dir = t.TempDir()
		stateDirs[t] = dir
	}
	stateMu.Unlock()
	d, err := New(context.Background(), Config{StateDir: dir, CgroupParent: "nubis-test",
		Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Cleanup(func() {
			ids, _ := d.List(context.Background())
			for _, id := range ids {
				t.Errorf("sandbox %s left behind", id)
				d.Remove(context.Background(), id)
			}
			stateMu.Lock()
			delete(stateDirs, t)
			stateMu.Unlock()
		})
	}
	return d
}

func TestSuite(t *testing.T) {
	sandboxtest.Run(t, newDriver)
	if z := zombieChildren(); len(z) > 0 {
		t.Errorf("zombie children of this process after the suite: %v", z)
	}
}

// TestNothingLeft checks what Kill must remove on the host: the cgroups, the runtime's state,
// the bundle, and any mount.
func TestNothingLeft(t *testing.T) {
	d := newDriver(t).(*Driver)
	ctx := t.Context()
	var out sandboxtest.Buffer
	sb, err := d.Create(ctx, sandbox.Spec{ID: sandboxtest.ID(t), RootFS: sandboxtest.RootFS(t), Stdout: &out,
		Args: sandboxtest.Python("import time; print('up', flush=True); time.sleep(600)")})
	if err != nil {
		t.Fatal(err)
	}
	if err := sb.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for out.String() == "" {
		time.Sleep(5 * time.Millisecond)
	}
	cgroups := []string{filepath.Join(d.cgroups.memory, d.cgroupsPath(sb.ID())), filepath.Join(d.cgroups.pids, d.cgroupsPath(sb.ID()))}
	for _, cg := range cgroups {
		if _, err := os.Stat(cg); err != nil {
			t.Errorf("cgroup while running: %v", err)
		}
	}
	if err := sb.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	for _, cg := range cgroups {
		if _, err := os.Stat(cg); !os.IsNotExist(err) {
			t.Errorf("cgroup %s left: %v", cg, err)
		}
	}
	for _, p := range []string{d.bundle(sb.ID()), filepath.Join(d.root, sb.ID())} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s left: %v", p, err)
		}
	}
	// Being a child subreaper must not leave zombies of runc's processes behind.
	if z := zombieChildren(); len(z) > 0 {
		t.Errorf("zombie children of this process: %v", z)
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), sb.ID()) {
		t.Errorf("a mount names the sandbox:\n%s", mounts)
	}
}

// TestConfig checks the OCI configuration the driver writes.
func TestConfig(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"tmp", "var/task"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	s, err := validate(sandbox.Spec{ID: "x", RootFS: root, Args: []string{"/bin/true"}, MemoryMB: 1769,
		Mounts: []sandbox.Mount{{Source: root, Destination: "/var/task"}}, NetNSPath: "/run/netns/x"})
	if err != nil {
		t.Fatal(err)
	}
	spec := ociSpec(s, "/nubis/x")
	if !spec.Root.Readonly || !spec.Process.NoNewPrivileges || spec.Process.User.UID != 993 || spec.Process.User.GID != 990 {
		t.Errorf("root %+v process %+v", spec.Root, spec.Process)
	}
	c := spec.Process.Capabilities
	if c == nil || len(c.Bounding)+len(c.Effective)+len(c.Permitted)+len(c.Inheritable)+len(c.Ambient) != 0 {
		t.Errorf("capabilities %+v", c)
	}
	if r := spec.Linux.Resources; *r.Memory.Limit != 1769<<20 || *r.Memory.Swap != *r.Memory.Limit ||
		*r.CPU.Quota != 10000 || *r.CPU.Period != 10000 || *r.CPU.Shares != 1024 || *r.Pids.Limit != 1024 {
		t.Errorf("resources: memory %d swap %d quota %d shares %d pids %d", *r.Memory.Limit, *r.Memory.Swap,
			*r.CPU.Quota, *r.CPU.Shares, *r.Pids.Limit)
	}
	var bind, tmp bool
	for _, m := range spec.Mounts {
		if m.Destination == "/var/task" {
			bind = slices.Contains(m.Options, "ro") && slices.Contains(m.Options, "nosuid") && slices.Contains(m.Options, "nodev")
		}
		if m.Destination == "/tmp" {
			tmp = slices.Contains(m.Options, "size=512m")
		}
	}
	if !bind || !tmp {
		t.Errorf("mounts %+v", spec.Mounts)
	}
	if i := slices.IndexFunc(spec.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == "network" }); i < 0 ||
		spec.Linux.Namespaces[i].Path != "/run/netns/x" {
		t.Errorf("namespaces %+v", spec.Linux.Namespaces)
	}
	b, err := json.Marshal(spec)
	if err != nil || !strings.Contains(string(b), `"SCMP_ACT_ERRNO"`) {
		t.Errorf("config.json: %v", err)
	}
	// 128 MB gets 128/1769 of a CPU.
	s.MemoryMB, s.CPUs = 128, sandbox.CPUsForMemory(128)
	if c := ociSpec(s, "/x").Linux.Resources.CPU; float64(*c.Quota)/float64(*c.Period) < 0.0723 || float64(*c.Quota)/float64(*c.Period) > 0.0724 {
		t.Errorf("quota at 128 MB: %d per %d", *c.Quota, *c.Period)
	}
}

// TestStartLatency measures where a sandbox's start goes: runc create + runc start (what the
// driver does, so that the create can happen ahead of time) against runc run -d; and how long the
// interpreters of the Lambda runtimes take from Start to exit, with Lambda's CPU share for
// 128 MB and with a whole CPU.
func TestStartLatency(t *testing.T) {
	d := newDriver(t).(*Driver)
	ctx := t.Context()
	root := sandboxtest.RootFS(t)
	const n = 10
	var create, start, runD time.Duration
	for i := 0; i < n; i++ {
		id := sandboxtest.ID(t)
		t0 := time.Now()
		sb, err := d.Create(ctx, sandbox.Spec{ID: id, RootFS: root, Args: []string{"/bin/true"}})
		if err != nil {
			t.Fatal(err)
		}
		t1 := time.Now()
		if err := sb.Start(ctx); err != nil {
			t.Fatal(err)
		}
		create, start = create+t1.Sub(t0), start+time.Since(t1)
		<-sb.Done()
		sb.Kill(ctx)

		// The same bundle with `runc run -d` in one step.
		s, _ := validate(sandbox.Spec{ID: id + "-run", RootFS: root, Args: []string{"/bin/true"}})
		bundle := d.bundle(s.ID)
		os.MkdirAll(bundle, 0o700)
		b, _ := json.Marshal(ociSpec(s, d.cgroupsPath(s.ID)))
		os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o600)
		devnull, _ := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		cmd := d.command(ctx, "run", "--detach", "--pid-file", filepath.Join(bundle, "pid"), "--bundle", bundle, s.ID)
		cmd.Stdout, cmd.Stderr = devnull, devnull
		t3 := time.Now()
		if err := cmd.Run(); err != nil {
			t.Fatalf("run -d: %v", err)
		}
		runD += time.Since(t3)
		// Its init is re-parented to this process (a child subreaper): reap it, as the driver does.
		if b, err := os.ReadFile(filepath.Join(bundle, "pid")); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				var ws unix.WaitStatus
				unix.Wait4(pid, &ws, 0, nil)
			}
		}
		devnull.Close()
		d.Remove(ctx, s.ID)
	}
	ms := func(d time.Duration) string { return (d / n).Round(10 * time.Microsecond).String() }
	t.Logf("average of %d: create %s + start %s = %s; run -d %s", n, ms(create), ms(start), ms(create+start), ms(runD))

	for _, args := range [][]string{{"/usr/bin/python3", "-c", "pass"}, {"/usr/bin/node", "-e", "0"}} {
		for _, cpus := range []float64{0, 1} {
			var total time.Duration
			for i := 0; i < 3; i++ {
				sb, err := d.Create(ctx, sandbox.Spec{ID: sandboxtest.ID(t), RootFS: root, Args: args, MemoryMB: 128, CPUs: cpus})
				if err != nil {
					t.Fatal(err)
				}
				t0 := time.Now()
				if err := sb.Start(ctx); err != nil {
					t.Fatal(err)
				}
				<-sb.Done()
				total += time.Since(t0)
				if st := sb.ExitStatus(); st.Code != 0 {
					t.Errorf("%v: %v", args, st)
				}
				sb.Kill(ctx)
			}
			t.Logf("%s at 128 MB, %.3f CPUs: start to exit %v", filepath.Base(args[0]),
				map[bool]float64{true: sandbox.CPUsForMemory(128), false: cpus}[cpus == 0], (total / 3).Round(time.Millisecond))
		}
	}
}

// TestRuntimeLog checks that a failing create reports the runtime's own words.
func TestRuntimeLog(t *testing.T) {
	d := newDriver(t)
	_, err := d.Create(t.Context(), sandbox.Spec{ID: sandboxtest.ID(t), RootFS: sandboxtest.RootFS(t),
		Args: []string{"/no/such/program"}})
	// runc checks the program at create time (runc 1.1) or start time (later): either is fine,
	// but an error must say what happened.
	if err != nil && !regexp.MustCompile(`no such file|not found|executable`).MatchString(err.Error()) {
		t.Errorf("create error does not name the cause: %v", err)
	}
	ids, _ := d.List(t.Context())
	for _, id := range ids {
		d.Remove(t.Context(), id)
	}
}

// zombieChildren lists the zombie processes whose parent is this process.
func zombieChildren() []string {
	entries, _ := os.ReadDir("/proc")
	var out []string
	me := strconv.Itoa(os.Getpid())
	for _, e := range entries {
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		i := strings.LastIndexByte(string(b), ')')
		f := strings.Fields(string(b)[i+1:])
		if len(f) > 1 && f[0] == "Z" && f[1] == me {
			out = append(out, e.Name()+" "+string(b)[:i+1])
		}
	}
	return out
}

func TestCPUQuota(t *testing.T) {
	for _, tc := range []struct {
		cpus          float64
		period, quota int64
	}{
		{1, 10000, 10000},
		{2, 10000, 20000},
		{0.5, 10000, 5000},
		{128.0 / 1769, 13821, 1000}, // a 128 MB function: the period grows so that the quota is 1 ms
		{0.0001, 1000000, 1000},     // the kernel's longest period
	} {
		p, q := cpuQuota(tc.cpus)
		if p != tc.period || q != tc.quota {
			t.Errorf("cpuQuota(%v) = %d/%d, want %d/%d", tc.cpus, q, p, tc.quota, tc.period)
		}
	}
}
