package sandboxtest

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/nubis/nubis/internal/sandbox"
)

func testOutput(t *testing.T, d sandbox.Driver) {
	r := Exec(t, d, sandbox.Spec{
		Args: Python("import sys, os; print('hello from', os.environ['GREETING']); print('oops', file=sys.stderr)"),
		Env:  []string{"GREETING=nubis"},
	})
	if r.Stdout != "hello from nubis\n" || r.Stderr != "oops\n" {
		t.Errorf("stdout %q, stderr %q", r.Stdout, r.Stderr)
	}
	if !r.Status.Known || r.Status.Code != 0 || r.Status.Signal != 0 {
		t.Errorf("status %+v, want exit 0", r.Status)
	}
	// One writer for both streams keeps their order.
	var both Buffer
	spec := sandbox.Spec{ID: ID(t), RootFS: RootFS(t), Stdout: &both, Stderr: &both,
		Args: Python("import sys\nfor i in range(3):\n print('out', i, flush=True); print('err', i, file=sys.stderr, flush=True)")}
	r2 := runWith(t, d, spec)
	if want := "out 0\nerr 0\nout 1\nerr 1\nout 2\nerr 2\n"; both.String() != want {
		t.Errorf("interleaved output %q, want %q (status %v)", both.String(), want, r2)
	}
	// A file receives the output directly.
	f, err := os.CreateTemp(t.TempDir(), "log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	spec = sandbox.Spec{ID: ID(t), RootFS: RootFS(t), Stdout: f, Stderr: f, Args: Python("print('to a file')")}
	runWith(t, d, spec)
	if b, _ := os.ReadFile(f.Name()); string(b) != "to a file\n" {
		t.Errorf("log file has %q", b)
	}
}

// runWith runs a spec whose writers are set by the caller, and returns its exit status.
func runWith(t *testing.T, d sandbox.Driver, spec sandbox.Spec) sandbox.ExitStatus {
	t.Helper()
	ctx := t.Context()
	sb, err := d.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Kill(ctx)
	if err := sb.Start(ctx); err != nil {
		t.Fatal(err)
	}
	<-sb.Done()
	return sb.ExitStatus()
}

func testExitCode(t *testing.T, d sandbox.Driver) {
	r := Exec(t, d, sandbox.Spec{Args: Python("import sys; sys.exit(3)")})
	if !r.Status.Known || r.Status.Code != 3 || r.Status.String() != "exit status 3" {
		t.Errorf("status %+v (%s), want exit status 3", r.Status, r.Status)
	}
	// A missing program fails at Create (runc checks it then), at Start, or exits non-zero.
	ctx := t.Context()
	sb, err := d.Create(ctx, sandbox.Spec{ID: ID(t), RootFS: RootFS(t), Args: []string{"/nonexistent"}})
	if err != nil {
		if !strings.Contains(err.Error(), "/nonexistent") {
			t.Errorf("create error does not name the program: %v", err)
		}
		return
	}
	defer sb.Kill(ctx)
	if err := sb.Start(ctx); err == nil {
		<-sb.Done()
		if sb.ExitStatus().Code == 0 {
			t.Errorf("a missing program exited 0")
		}
	}
}

func testIdentity(t *testing.T, d sandbox.Driver) {
	r := Exec(t, d, sandbox.Spec{Args: []string{"/bin/sh", "-c", "cat /proc/self/status; id; hostname; echo cwd=$(pwd); ulimit -n"},
		Hostname: "sbx", Cwd: "/tmp"})
	status := map[string]string{}
	for _, line := range strings.Split(r.Stdout, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			status[k] = strings.TrimSpace(v)
		}
	}
	for k, want := range map[string]string{
		"CapInh": "0000000000000000", "CapPrm": "0000000000000000", "CapEff": "0000000000000000",
		"CapBnd": "0000000000000000", "CapAmb": "0000000000000000", "NoNewPrivs": "1", "Seccomp": "2",
		"Uid": "993\t993\t993\t993", "Gid": "990\t990\t990\t990",
	} {
		if status[k] != want {
			t.Errorf("%s: %q, want %q", k, status[k], want)
		}
	}
	for _, want := range []string{"uid=993(sbx_user1051) gid=990(sbx_user1051)", "\nsbx\n", "cwd=/tmp\n", "\n1024\n"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("output lacks %q:\n%s%s", want, r.Stdout, r.Stderr)
		}
	}
}

func testReadOnlyRoot(t *testing.T, d sandbox.Driver) {
	r := Exec(t, d, sandbox.Spec{Args: Python(`
import os
for p in ['/x', '/etc/passwd', '/usr/bin/python3', '/var/task/x']:
    try:
        open(p, 'a').close(); print('wrote', p)
    except OSError as e:
        print('refused', p, e.errno)
open('/tmp/ok', 'w').write('fine'); print('tmp', open('/tmp/ok').read())
open('/dev/shm/ok', 'w').write('fine'); print('shm ok')
`)})
	if strings.Contains(r.Stdout, "wrote") || !strings.Contains(r.Stdout, "tmp fine") || !strings.Contains(r.Stdout, "shm ok") {
		t.Errorf("output:\n%s%s", r.Stdout, r.Stderr)
	}
}

func testTmpSize(t *testing.T, d sandbox.Driver) {
	r := Exec(t, d, sandbox.Spec{TmpfsSizeMB: 8, MemoryMB: 128, Args: Python(`
import os
n = 0
try:
    with open('/tmp/big', 'wb') as f:
        for i in range(32):
            f.write(b'x' * (1 << 20)); f.flush(); n += 1
except OSError as e:
    print('stopped at', n, 'MB, errno', e.errno)
`)})
	if !strings.Contains(r.Stdout, "errno 28") { // ENOSPC
		t.Errorf("writing 32 MB to an 8 MB /tmp: %s%s", r.Stdout, r.Stderr)
	}
}

func testCodeMount(t *testing.T, d sandbox.Driver) {
	code := t.TempDir()
	os.Chmod(code, 0o755)
	os.WriteFile(filepath.Join(code, "handler.py"), []byte("def handler(e, c):\n    return 'handled ' + e\n"), 0o644)
	r := Exec(t, d, sandbox.Spec{
		Mounts: []sandbox.Mount{{Source: code, Destination: "/var/task"}},
		Cwd:    "/var/task",
		Args: Python(`
import sys; sys.path.insert(0, '/var/task')
import handler; print(handler.handler('event', None))
try:
    open('/var/task/new', 'w'); print('wrote')
except OSError as e:
    print('read-only', e.errno)
`)})
	if !strings.Contains(r.Stdout, "handled event") || !strings.Contains(r.Stdout, "read-only 30") { // EROFS
		t.Errorf("output:\n%s%s", r.Stdout, r.Stderr)
	}
	if _, err := os.Stat(filepath.Join(code, "new")); err == nil {
		t.Error("the sandbox wrote into the code dir")
	}
}

func testHostHidden(t *testing.T, d sandbox.Driver) {
	secret := filepath.Join(t.TempDir(), "host-secret")
	os.WriteFile(secret, []byte("s3cret"), 0o644)
	r := Exec(t, d, sandbox.Spec{Args: Python(`
import os
pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())
print('pids', pids)
for p in ['/work', '/root/.bash_history', '/var/cache/nubis', '` + secret + `', '/run/netns']:
    print(p, os.path.exists(p))
try:
    open('/etc/shadow').read(); print('shadow readable')
except OSError as e:
    print('shadow', e.errno)
print('mounts', len(open('/proc/self/mounts').read().splitlines()))
`)})
	if !strings.Contains(r.Stdout, "pids [1]\n") {
		t.Errorf("the sandbox sees other processes: %s", r.Stdout)
	}
	if strings.Contains(r.Stdout, "True") || strings.Contains(r.Stdout, "shadow readable") {
		t.Errorf("host files visible:\n%s%s", r.Stdout, r.Stderr)
	}
}

func testSeccomp(t *testing.T, d sandbox.Driver) {
	r := Exec(t, d, sandbox.Spec{Args: Python(`
import ctypes, os, socket
libc = ctypes.CDLL(None, use_errno=True)
def call(name, *args):
    r = getattr(libc, name)(*args)
    return 'ok' if r >= 0 else os.strerror(ctypes.get_errno())
print('unshare-user', call('unshare', 0x10000000))   # CLONE_NEWUSER: allowed without caps, but not here
print('mount', call('mount', b'none', b'/tmp', b'tmpfs', 0, None))
print('keyctl', call('syscall', 250, 0, 0, 0, 0))      # keyctl (x86_64): not in the profile
try:
    socket.socket(40, socket.SOCK_STREAM); print('vsock ok')  # AF_VSOCK
except OSError as e:
    print('vsock', os.strerror(e.errno))
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM); print('inet ok')
pid = os.fork()
if pid == 0:
    os._exit(7)
print('fork', os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
`)})
	for _, want := range []string{"unshare-user Operation not permitted", "mount Operation not permitted",
		"vsock Operation not permitted", "inet ok", "fork 7"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("output lacks %q:\n%s%s", want, r.Stdout, r.Stderr)
		}
	}
	if !strings.Contains(r.Stdout, "keyctl Operation not permitted") && !strings.Contains(r.Stdout, "keyctl Function not implemented") {
		t.Errorf("keyctl allowed:\n%s", r.Stdout)
	}
}

func testMemory(t *testing.T, d sandbox.Driver) {
	const mb = 64
	r := Exec(t, d, sandbox.Spec{MemoryMB: mb, Args: Python(`
chunks = []
for i in range(400):
    chunks.append(bytearray(1 << 20))
    if i % 16 == 0: print('allocated', i + 1, 'MB', flush=True)
print('survived')
`)})
	if strings.Contains(r.Stdout, "survived") {
		t.Fatalf("allocated 400 MB under a %d MB limit", mb)
	}
	if r.Status.Signal != syscall.SIGKILL {
		t.Errorf("status %v, want killed", r.Status)
	}
	if !r.Stats.OOMKilled {
		t.Errorf("stats %+v: OOMKilled false", r.Stats)
	}
	limit := uint64(mb) << 20
	if r.Stats.MemoryLimitBytes != limit {
		t.Errorf("limit %d, want %d", r.Stats.MemoryLimitBytes, limit)
	}
	if r.Stats.MemoryMaxUsageBytes < limit*9/10 || r.Stats.MemoryMaxUsageBytes > limit {
		t.Errorf("max usage %d MB, want close to the %d MB limit", r.Stats.MemoryMaxUsageBytes>>20, mb)
	}
	t.Logf("killed at %v: max usage %d MB of %d MB", r.Status, r.Stats.MemoryMaxUsageBytes>>20, mb)

	// A process within its limit reports a plausible usage and no OOM.
	r = Exec(t, d, sandbox.Spec{MemoryMB: 128, Args: Python("b = bytearray(20 << 20); print('ok')")})
	if r.Stats.OOMKilled || r.Stats.MemoryMaxUsageBytes < 20<<20 || r.Stdout != "ok\n" {
		t.Errorf("20 MB in 128 MB: %q %+v", r.Stdout, r.Stats)
	}
}

func testPids(t *testing.T, d sandbox.Driver) {
	r := Exec(t, d, sandbox.Spec{PidsLimit: 32, Args: Python(`
import os, time
n = 0
try:
    for i in range(200):
        if os.fork() == 0:
            time.sleep(30); os._exit(0)
        n += 1
except OSError as e:
    print('fork failed after', n, 'errno', e.errno, flush=True)
print('forked', n, flush=True)
os._exit(0)
`)})
	if !strings.Contains(r.Stdout, "fork failed after") || strings.Contains(r.Stdout, "forked 200") {
		t.Errorf("fork bomb not bounded:\n%s%s", r.Stdout, r.Stderr)
	}
	t.Logf("%s", strings.TrimSpace(r.Stdout))
}
