package sandboxtest

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nubis/nubis/internal/errdefs"
	"github.com/nubis/nubis/internal/netns"
	"github.com/nubis/nubis/internal/sandbox"
)

// testNetNS is the Lambda arrangement: nubis listens on 127.0.0.1:9001 inside a namespace of its
// own making, and the sandbox that joins that namespace reaches the listener there.
func testNetNS(t *testing.T, d sandbox.Driver) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "netns")
	t.Cleanup(func() { netns.Cleanup(dir); unix.Unmount(dir, unix.MNT_DETACH) })
	ns, err := netns.New(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	l, err := ns.Listen(ctx, "tcp", "127.0.0.1:9001")
	if err != nil {
		t.Fatal(err)
	}
	responses := make(chan string, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Lambda-Runtime-Aws-Request-Id", "req-1")
		io.WriteString(w, `{"name":"world"}`)
	})
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/response", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		responses <- r.PathValue("id") + " " + string(b)
		w.WriteHeader(http.StatusAccepted)
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)
	defer srv.Close()

	r := Exec(t, d, sandbox.Spec{
		NetNSPath: ns.Path(),
		Env:       []string{"AWS_LAMBDA_RUNTIME_API=127.0.0.1:9001"},
		Args: Python(`
import json, os, urllib.request
api = 'http://' + os.environ['AWS_LAMBDA_RUNTIME_API'] + '/2018-06-01/runtime/invocation/'
with urllib.request.urlopen(api + 'next') as r:
    rid, event = r.headers['Lambda-Runtime-Aws-Request-Id'], json.load(r)
body = json.dumps({'hello': event['name']}).encode()
urllib.request.urlopen(urllib.request.Request(api + rid + '/response', data=body, method='POST'))
print('done', rid)
`)})
	if r.Stdout != "done req-1\n" {
		t.Errorf("output:\n%s%s", r.Stdout, r.Stderr)
	}
	select {
	case got := <-responses:
		if got != `req-1 {"hello": "world"}` {
			t.Errorf("response %q", got)
		}
	default:
		t.Error("no response posted")
	}
}

// testOwnNetwork: without a namespace path the sandbox has a network of its own, and no way out.
func testOwnNetwork(t *testing.T, d sandbox.Driver) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	r := Exec(t, d, sandbox.Spec{Args: Python(`
import socket
print(sorted(l.split(':')[0].strip() for l in open('/proc/net/dev').readlines()[2:]))
try:
    socket.create_connection(('127.0.0.1', ` + strconv.Itoa(port) + `), timeout=2); print('reached the host')
except OSError as e:
    print('isolated')
`)})
	if r.Stdout != "['lo']\nisolated\n" {
		t.Errorf("output:\n%s%s", r.Stdout, r.Stderr)
	}
}

// hostProcesses lists the host pids whose command line contains marker.
func hostProcesses(t *testing.T, marker string) []int {
	t.Helper()
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid := 0
		for _, c := range e.Name() {
			if c < '0' || c > '9' {
				pid = -1
				break
			}
			pid = pid*10 + int(c-'0')
		}
		if pid <= 0 {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && strings.Contains(string(b), marker) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// startSleeper starts a sandbox of two processes (python and a forked child) that run until
// killed, with marker on their command lines, and waits until both run.
func startSleeper(t *testing.T, d sandbox.Driver, id, marker string) sandbox.Sandbox {
	t.Helper()
	ctx := t.Context()
	var out Buffer
	sb, err := d.Create(ctx, sandbox.Spec{ID: id, RootFS: RootFS(t), Stdout: &out, Stderr: &out,
		Args: append(Python("import os, sys, time\nif os.fork() == 0:\n    print('ready', flush=True)\ntime.sleep(600)"), marker)})
	if err != nil {
		t.Fatal(err)
	}
	if err := sb.Start(ctx); err != nil {
		sb.Kill(ctx)
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "ready") || len(hostProcesses(t, marker)) < 2 {
		if time.Now().After(deadline) {
			sb.Kill(ctx)
			t.Fatalf("sandbox did not get ready: %q", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return sb
}

func testKillCleans(t *testing.T, d sandbox.Driver) {
	ctx := t.Context()
	id := ID(t)
	marker := "marker-" + id
	sb := startSleeper(t, d, id, marker)
	if st, err := sb.Stats(ctx); err != nil || st.Pids != 2 {
		t.Errorf("stats while running: %+v, %v (want 2 pids)", st, err)
	}
	start := time.Now()
	if err := sb.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("kill and delete took %v", time.Since(start).Round(time.Millisecond))
	select {
	case <-sb.Done():
	default:
		t.Error("Done not closed after Kill")
	}
	if st := sb.ExitStatus(); st.Signal != syscall.SIGKILL {
		t.Errorf("status %v, want killed", st)
	}
	if pids := hostProcesses(t, marker); len(pids) > 0 {
		t.Errorf("processes left after Kill: %v", pids)
	}
	if ids, _ := d.List(ctx); slices.Contains(ids, id) {
		t.Errorf("List still has %s after Kill", id)
	}
	if err := sb.Kill(ctx); err != nil {
		t.Errorf("second Kill: %v", err)
	}
}

func testCreateThenStart(t *testing.T, d sandbox.Driver) {
	ctx := t.Context()
	var out Buffer
	created := time.Now()
	sb, err := d.Create(ctx, sandbox.Spec{ID: ID(t), RootFS: RootFS(t), Stdout: &out, Args: []string{"/bin/echo", "started"}})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Kill(ctx)
	tCreate := time.Since(created)
	time.Sleep(100 * time.Millisecond)
	if out.String() != "" {
		t.Errorf("the process ran before Start: %q", out.String())
	}
	select {
	case <-sb.Done():
		t.Fatal("Done before Start")
	default:
	}
	started := time.Now()
	if err := sb.Start(ctx); err != nil {
		t.Fatal(err)
	}
	tStart := time.Since(started)
	<-sb.Done()
	tDone := time.Since(started)
	if out.String() != "started\n" || sb.ExitStatus().Code != 0 {
		t.Errorf("output %q, status %v", out.String(), sb.ExitStatus())
	}
	t.Logf("create %v, start %v, start to exit of /bin/echo %v", tCreate.Round(time.Microsecond),
		tStart.Round(time.Microsecond), tDone.Round(time.Microsecond))
}

func testListRemove(t *testing.T, d sandbox.Driver) {
	ctx := t.Context()
	a := startSleeper(t, d, ID(t), "marker-"+ID(t))
	b, err := d.Create(ctx, sandbox.Spec{ID: ID(t), RootFS: RootFS(t), Args: []string{"/bin/true"}})
	if err != nil {
		t.Fatal(err)
	}
	ids, err := d.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{a.ID(), b.ID()} {
		if !slices.Contains(ids, id) {
			t.Errorf("List %v lacks %s", ids, id)
		}
		if err := d.Remove(ctx, id); err != nil {
			t.Errorf("Remove %s: %v", id, err)
		}
		if err := d.Remove(ctx, id); err != nil {
			t.Errorf("second Remove %s: %v", id, err)
		}
	}
	for _, sb := range []sandbox.Sandbox{a, b} {
		select {
		case <-sb.Done():
		case <-time.After(5 * time.Second):
			t.Errorf("%s: Done not closed after Remove", sb.ID())
		}
	}
	ids, _ = d.List(ctx)
	if slices.Contains(ids, a.ID()) || slices.Contains(ids, b.ID()) {
		t.Errorf("List after Remove: %v", ids)
	}
	if err := d.Remove(ctx, "never-existed"); err != nil {
		t.Errorf("Remove of an unknown id: %v", err)
	}
}

// testAttach: a second driver on the same state (nubis after a restart) finds the sandbox,
// watches it and kills it.
func testAttach(t *testing.T, newDriver func(*testing.T) sandbox.Driver) {
	ctx := t.Context()
	d1 := newDriver(t)
	id := ID(t)
	marker := "marker-" + id
	sb1 := startSleeper(t, d1, id, marker)
	defer sb1.Kill(ctx)

	d2 := newDriver(t)
	if ids, err := d2.List(ctx); err != nil || !slices.Contains(ids, id) {
		t.Fatalf("second driver's List: %v, %v", ids, err)
	}
	sb2, err := d2.Attach(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-sb2.Done():
		t.Fatal("attached sandbox reported done while running")
	case <-time.After(100 * time.Millisecond):
	}
	if st, err := sb2.Stats(ctx); err != nil || st.Pids != 2 {
		t.Errorf("stats through Attach: %+v, %v", st, err)
	}
	if _, err := d2.Attach(ctx, "no-such-sandbox"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Attach of an unknown id: %v, want ErrNotFound", err)
	}
	if err := sb2.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	for _, sb := range []sandbox.Sandbox{sb1, sb2} {
		select {
		case <-sb.Done():
		case <-time.After(5 * time.Second):
			t.Error("Done not closed after Kill through Attach")
		}
	}
	if pids := hostProcesses(t, marker); len(pids) > 0 {
		t.Errorf("processes left: %v", pids)
	}
}

func testInvalid(t *testing.T, d sandbox.Driver) {
	ctx := t.Context()
	root := RootFS(t)
	for name, spec := range map[string]sandbox.Spec{
		"bad id":          {ID: "../x", RootFS: root, Args: []string{"/bin/true"}},
		"no rootfs":       {ID: ID(t), RootFS: "/nonexistent", Args: []string{"/bin/true"}},
		"no args":         {ID: ID(t), RootFS: root},
		"no mount point":  {ID: ID(t), RootFS: root, Args: []string{"/bin/true"}, Mounts: []sandbox.Mount{{Source: "/tmp", Destination: "/no/such/dir"}}},
		"relative source": {ID: ID(t), RootFS: root, Args: []string{"/bin/true"}, Mounts: []sandbox.Mount{{Source: "tmp", Destination: "/opt"}}},
	} {
		if sb, err := d.Create(ctx, spec); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: %v, want ErrInvalidArgument", name, err)
			if sb != nil {
				sb.Kill(ctx)
			}
		}
	}
	spec := sandbox.Spec{ID: ID(t), RootFS: root, Args: []string{"/bin/true"}}
	sb, err := d.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Kill(context.Background())
	if _, err := d.Create(ctx, spec); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("duplicate id: %v, want ErrAlreadyExists", err)
	}
}
