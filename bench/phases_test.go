package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nubis/nubis/internal/image"
	"github.com/nubis/nubis/internal/netns"
	"github.com/nubis/nubis/internal/runtimeapi"
	"github.com/nubis/nubis/internal/sandbox"
	"github.com/nubis/nubis/internal/sandbox/runc"
	"github.com/nubis/nubis/runtimes"
)

// BenchmarkColdStartPhases times the steps of a cold start one by one, from outside the server:
// it makes environments as internal/lambda's startEnvironment does (the same packages, image,
// runtime client, sandbox spec and environment), coldStarts times, and times each step:
//
//	netns     netns.New: a network namespace with its loopback up, pinned by a bind mount
//	listen    the Runtime API's listener at 127.0.0.1:9001 inside it, and its server started
//	create    the runc driver's Create: the bundle's config.json, then `runc create`
//	start     Start: `runc start`
//	init      from then until the runtime client's first GET /next (python3 starting
//	          bootstrap.py and importing the handler)
//	invoke    the first invocation through the Runtime API
//	teardown  Kill (`runc kill`, wait, `runc delete`), the API server closed, the netns unpinned
//
// The sub-benchmark memory=128MB-unthrottled-init tries what a cold start at 128 MB would cost if
// the runtime's init ran without the CPU quota: the sandbox is created with none, and once the
// runtime asks for its first invocation the quota for 128 MB is written into its cgroup (the
// "quota" phase), before that invocation.
//
// "create" + "start" + "init" is what nubis reports as the Init Duration; the cold invocation's
// latency through the API (BenchmarkColdStart) adds "netns", "listen", "invoke" and the API's own
// work (SigV4, the store, opening the log stream). The sub-benchmark unsandboxed runs the same
// runtime client with the host's python3 and no sandbox, and runc-exec times `runc --version`: the
// cost of executing the runtime binary at all.
func BenchmarkColdStartPhases(b *testing.B) {
	needSandboxes(b)
	for _, mem := range []int{128, 1769} {
		b.Run(fmt.Sprintf("memory=%dMB", mem), func(b *testing.B) {
			fixedWork(b, func() []metric { return sandboxPhases(b, mem, false) })
		})
	}
	b.Run("memory=128MB-unthrottled-init", func(b *testing.B) {
		fixedWork(b, func() []metric { return sandboxPhases(b, 128, true) })
	})
	b.Run("unsandboxed", func(b *testing.B) {
		fixedWork(b, func() []metric { return hostPhases(b) })
	})
}

// phaseTimes collects the durations of named phases, in order.
type phaseTimes struct {
	names []string
	d     map[string][]time.Duration
}

func (p *phaseTimes) add(name string, d time.Duration) {
	if p.d == nil {
		p.d = map[string][]time.Duration{}
	}
	if _, ok := p.d[name]; !ok {
		p.names = append(p.names, name)
	}
	p.d[name] = append(p.d[name], d)
}

// report adds a table of the phases to those printed after the run, and returns each one's p50 (and the total's p99) as metrics.
func (p *phaseTimes) report(b *testing.B) []metric {
	var ms []metric
	var tab strings.Builder
	fmt.Fprintf(&tab, "%s: %d cold starts\n%-10s %9s %9s %9s %9s\n", b.Name(), len(p.d[p.names[0]]), "phase", "p50 ms", "p99 ms", "mean ms", "max ms")
	for _, n := range p.names {
		st := latencyStats(p.d[n])
		fmt.Fprintf(&tab, "%-10s %9.2f %9.2f %9.2f %9.2f\n", n, msf(st.p50), msf(st.p99), msf(st.mean), msf(st.max))
		ms = append(ms, metric{msf(st.p50), n + "-p50-ms"})
		if n == "total" {
			ms = append(ms, metric{msf(st.p99), n + "-p99-ms"})
		}
	}
	tables = append(tables, tab.String())
	return ms
}

func sandboxPhases(b *testing.B, memoryMB int, unthrottledInit bool) []metric {
	ctx := context.Background()
	dir := b.TempDir()
	rootfs, err := (&image.Builder{}).Ensure(ctx, image.LambdaRuntime)
	if err != nil {
		b.Fatal(err)
	}
	drv, err := runc.New(ctx, runc.Config{StateDir: filepath.Join(dir, "sandboxes")})
	if err != nil {
		b.Fatal(err)
	}
	runtimeDir, taskDir, nsDir := filepath.Join(dir, "runtime"), filepath.Join(dir, "task"), filepath.Join(dir, "netns")
	if err := runtimes.Install(runtimeDir); err != nil {
		b.Fatal(err)
	}
	if err := os.Mkdir(taskDir, 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(taskDir, "app.py"), []byte(echoHandler), 0o644); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { netns.Release(nsDir) })
	args, _ := runtimes.Command("python3.12")
	var p phaseTimes
	for range coldStarts {
		id := "bench-" + randomHex(8)
		t0 := time.Now()
		ns, err := netns.New(ctx, nsDir)
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		l, err := ns.Listen(ctx, "tcp", "127.0.0.1:9001")
		if err != nil {
			b.Fatal(err)
		}
		api := runtimeapi.New(nil)
		go api.Serve(l)
		t2 := time.Now()
		// As nubis does: the runtime's output into a pipe whose read end this process copies.
		out := &tailWriter{}
		r, w, err := os.Pipe()
		if err != nil {
			b.Fatal(err)
		}
		go func() { io.Copy(out, r); r.Close() }()
		spec := sandbox.Spec{
			ID: id, RootFS: rootfs, Args: args, Cwd: "/var/task", Hostname: "localhost",
			Env: []string{
				"AWS_LAMBDA_RUNTIME_API=127.0.0.1:9001", "_HANDLER=app.handler", "LAMBDA_TASK_ROOT=/var/task",
				"LAMBDA_RUNTIME_DIR=/var/runtime", "AWS_LAMBDA_FUNCTION_NAME=echo",
				fmt.Sprintf("AWS_LAMBDA_FUNCTION_MEMORY_SIZE=%d", memoryMB), "AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
				"AWS_REGION=us-east-1", "AWS_DEFAULT_REGION=us-east-1", "AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/echo",
				"AWS_LAMBDA_LOG_STREAM_NAME=bench", "AWS_EXECUTION_ENV=AWS_Lambda_python3.12",
				"AWS_LAMBDA_INITIALIZATION_TYPE=on-demand", "TZ=:UTC", "LANG=C.UTF-8",
				"PATH=/usr/local/bin:/usr/bin:/bin:/opt/bin", "HOME=/tmp",
			},
			Mounts: []sandbox.Mount{
				{Source: taskDir, Destination: "/var/task"},
				{Source: runtimeDir, Destination: runtimes.MountPoint},
			},
			TmpfsSizeMB: 512, MemoryMB: memoryMB, PidsLimit: sandbox.DefaultPidsLimit,
			NetNSPath: ns.Path(), Stdout: w, Stderr: w,
		}
		if unthrottledInit {
			spec.CPUs = -1
		}
		sb, err := drv.Create(ctx, spec)
		w.Close()
		if err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		if err := sb.Start(ctx); err != nil {
			b.Fatal(err)
		}
		t4 := time.Now()
		select {
		case <-api.Ready():
		case res := <-api.InitError():
			b.Fatalf("init error: %s\n%s", res.Payload, out)
		case <-sb.Done():
			b.Fatalf("runtime exited: %s\n%s", sb.ExitStatus(), out)
		case <-time.After(10 * time.Second):
			b.Fatalf("runtime did not ask for an invocation within 10 s\n%s", out)
		}
		t5 := time.Now()
		if unthrottledInit {
			if err := sb.SetCPUs(context.Background(), sandbox.CPUsForMemory(memoryMB)); err != nil {
				b.Fatal(err)
			}
		}
		t5q := time.Now()
		res, err := api.Invoke(ctx, runtimeapi.Invocation{RequestID: randomHex(16), Payload: []byte(`{"cold":true}`),
			Deadline: time.Now().Add(3 * time.Second), FunctionARN: "arn:aws:lambda:us-east-1:123456789012:function:echo"})
		if err != nil || res.Failed() || string(res.Payload) != `{"cold": true}` {
			b.Fatalf("first invocation: %v %s %s\n%s", err, res.ErrorType, res.Payload, out)
		}
		t6 := time.Now()
		if err := sb.Kill(ctx); err != nil {
			b.Fatal(err)
		}
		api.Close()
		ns.Close()
		t7 := time.Now()
		phases := []struct {
			name string
			d    time.Duration
		}{{"netns", t1.Sub(t0)}, {"listen", t2.Sub(t1)}, {"create", t3.Sub(t2)}, {"start", t4.Sub(t3)},
			{"init", t5.Sub(t4)}, {"quota", t5q.Sub(t5)}, {"invoke", t6.Sub(t5q)}, {"total", t6.Sub(t0)},
			{"init-dur", t5.Sub(t2)}, {"teardown", t7.Sub(t6)}}
		for _, ph := range phases {
			if ph.name != "quota" || unthrottledInit {
				p.add(ph.name, ph.d)
			}
		}
	}
	return append(p.report(b), metric{coldStarts, "cold-starts"})
}

// hostPhases runs the runtime client with the host's python3, no sandbox, against a Runtime API
// on a loopback port, and times `runc --version`.
func hostPhases(b *testing.B) []metric {
	if _, err := os.Stat(hostPython); err != nil {
		b.Skipf("skipped: no %s", hostPython)
	}
	dir := b.TempDir()
	runtimeDir, taskDir := filepath.Join(dir, "runtime"), filepath.Join(dir, "task")
	if err := runtimes.Install(runtimeDir); err != nil {
		b.Fatal(err)
	}
	if err := os.Mkdir(taskDir, 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(taskDir, "app.py"), []byte(echoHandler), 0o644); err != nil {
		b.Fatal(err)
	}
	runcBin, err := exec.LookPath("runc")
	if err != nil {
		runcBin = "/usr/sbin/runc"
	}
	ctx := context.Background()
	var p phaseTimes
	for range coldStarts {
		t0 := time.Now()
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		api := runtimeapi.New(nil)
		go api.Serve(l)
		t1 := time.Now()
		out := &tailWriter{}
		cmd := exec.Command(hostPython, filepath.Join(runtimeDir, "python", "bootstrap.py"))
		cmd.Dir = taskDir
		cmd.Env = []string{"AWS_LAMBDA_RUNTIME_API=" + l.Addr().String(), "_HANDLER=app.handler", "LAMBDA_TASK_ROOT=" + taskDir,
			"AWS_LAMBDA_FUNCTION_NAME=echo", "TZ=:UTC", "LANG=C.UTF-8", "PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + taskDir}
		cmd.Stdout, cmd.Stderr = out, out
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		select {
		case <-api.Ready():
		case res := <-api.InitError():
			b.Fatalf("init error: %s\n%s", res.Payload, out)
		case <-time.After(10 * time.Second):
			b.Fatalf("runtime did not ask for an invocation within 10 s\n%s", out)
		}
		t3 := time.Now()
		res, err := api.Invoke(ctx, runtimeapi.Invocation{RequestID: randomHex(16), Payload: []byte(`{"cold":true}`),
			Deadline: time.Now().Add(3 * time.Second), FunctionARN: "arn:aws:lambda:us-east-1:123456789012:function:echo"})
		if err != nil || res.Failed() || string(res.Payload) != `{"cold": true}` {
			b.Fatalf("first invocation: %v %s %s\n%s", err, res.ErrorType, res.Payload, out)
		}
		t4 := time.Now()
		cmd.Process.Kill()
		cmd.Wait()
		api.Close()
		t5 := time.Now()
		v := exec.Command(runcBin, "--version")
		if err := v.Run(); err != nil {
			b.Fatal(err)
		}
		t6 := time.Now()
		for _, ph := range []struct {
			name string
			d    time.Duration
		}{{"listen", t1.Sub(t0)}, {"start", t2.Sub(t1)}, {"init", t3.Sub(t2)}, {"invoke", t4.Sub(t3)},
			{"total", t4.Sub(t0)}, {"teardown", t5.Sub(t4)}, {"runc-exec", t6.Sub(t5)}} {
			p.add(ph.name, ph.d)
		}
	}
	return append(p.report(b), metric{coldStarts, "cold-starts"})
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// tailWriter keeps the last 4 KiB written to it, for an error message.
type tailWriter struct {
	mu  sync.Mutex
	buf []byte
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	if len(w.buf) > 4096 {
		w.buf = w.buf[len(w.buf)-4096:]
	}
	return len(p), nil
}

func (w *tailWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.buf)
}
