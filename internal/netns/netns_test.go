package netns

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nubis/nubis/internal/testenv"

	"golang.org/x/sys/unix"
)

// testDir is a fresh namespace dir, unmounted again at the end of the test.
func testDir(t *testing.T) string {
	t.Helper()
	testenv.Need(t, os.Geteuid() == 0, "network namespaces need root")
	dir := filepath.Join(t.TempDir(), "netns")
	t.Cleanup(func() {
		Cleanup(dir)
		unix.Unmount(dir, unix.MNT_DETACH)
	})
	return dir
}

// serve answers every HTTP request with token.
func serve(t *testing.T, l net.Listener, token string) {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, token)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
}

// get fetches http://addr/ with a client whose sockets are opened inside ns (or on the host if
// ns is nil).
func get(ctx context.Context, ns *NS, addr string) (string, error) {
	dial := func(ctx context.Context, network, a string) (net.Conn, error) {
		var c net.Conn
		var err error
		if ns == nil {
			return (&net.Dialer{}).DialContext(ctx, network, a)
		}
		derr := ns.Do(ctx, func() error {
			c, err = (&net.Dialer{}).DialContext(ctx, network, a)
			return nil
		})
		if derr != nil {
			return nil, derr
		}
		return c, err
	}
	client := &http.Client{Transport: &http.Transport{DialContext: dial}, Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + addr + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestListenInside(t *testing.T) {
	dir := testDir(t)
	ctx := context.Background()
	ns, err := New(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	if !strings.HasPrefix(ns.Path(), dir+"/") {
		t.Errorf("path %s not in %s", ns.Path(), dir)
	}
	l, err := ns.Listen(ctx, "tcp", "127.0.0.1:9001")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, l, "from-ns-1")

	// From inside, through this process.
	if got, err := get(ctx, ns, "127.0.0.1:9001"); err != nil || got != "from-ns-1" {
		t.Errorf("inside the namespace: %q, %v", got, err)
	}
	// From inside, through another process that joins the namespace by its path, as a sandbox will.
	if _, err := exec.LookPath("nsenter"); err == nil {
		if _, err := exec.LookPath("curl"); err == nil {
			out, err := exec.Command("nsenter", "--net="+ns.Path(), "curl", "-sS", "--max-time", "5", "http://127.0.0.1:9001/").CombinedOutput()
			if err != nil || string(out) != "from-ns-1" {
				t.Errorf("nsenter curl: %q, %v", out, err)
			}
			// The namespace has a loopback only.
			out, _ = exec.Command("nsenter", "--net="+ns.Path(), "cat", "/proc/net/dev").CombinedOutput()
			if strings.Contains(string(out), "eth") || !strings.Contains(string(out), "lo:") {
				t.Errorf("interfaces in the namespace:\n%s", out)
			}
		}
	}
	// Not from the host.
	if got, err := get(ctx, nil, "127.0.0.1:9001"); err == nil && got == "from-ns-1" {
		t.Error("the host's 127.0.0.1:9001 reaches the listener inside the namespace")
	}
}

func TestTwoNamespacesSamePort(t *testing.T) {
	dir := testDir(t)
	ctx := context.Background()
	var nss []*NS
	for i := range 2 {
		ns, err := New(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		defer ns.Close()
		l, err := ns.Listen(ctx, "tcp", "127.0.0.1:9001")
		if err != nil {
			t.Fatalf("namespace %d: %v", i, err)
		}
		serve(t, l, fmt.Sprintf("ns-%d", i))
		nss = append(nss, ns)
	}
	for i, ns := range nss {
		if got, err := get(ctx, ns, "127.0.0.1:9001"); err != nil || got != fmt.Sprintf("ns-%d", i) {
			t.Errorf("namespace %d answered %q, %v", i, got, err)
		}
	}
	if nss[0].Path() == nss[1].Path() {
		t.Error("two namespaces share a path")
	}
}

func mounted(t *testing.T, path string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == path {
			return true
		}
	}
	return false
}

func TestCloseAndCleanup(t *testing.T) {
	dir := testDir(t)
	ctx := context.Background()
	ns, err := New(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if !mounted(t, ns.Path()) {
		t.Fatal("namespace file not mounted")
	}
	if err := ns.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(ns.Path()); !os.IsNotExist(err) {
		t.Errorf("file still there after Close: %v", err)
	}
	if mounted(t, ns.Path()) {
		t.Error("still mounted after Close")
	}
	if err := ns.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := ns.Listen(ctx, "tcp", "127.0.0.1:0"); err == nil {
		t.Error("Listen on a closed namespace worked")
	}

	// Leftovers of a crashed run: namespaces pinned but never closed.
	a, _ := New(ctx, dir)
	b, _ := New(ctx, dir)
	if a == nil || b == nil {
		t.Fatal("New failed")
	}
	// Reattach by path, as after a restart.
	again, err := Open(a.Path())
	if err != nil {
		t.Fatal(err)
	}
	l, err := again.Listen(ctx, "tcp", "127.0.0.1:9001")
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	again.Close()
	os.WriteFile(filepath.Join(dir, "not-ours"), nil, 0o644)
	if paths, _ := List(dir); len(paths) != 1 {
		t.Errorf("List: %v", paths)
	}
	if err := Cleanup(dir); err != nil {
		t.Fatal(err)
	}
	if paths, _ := List(dir); len(paths) != 0 {
		t.Errorf("left after Cleanup: %v", paths)
	}
	if mounted(t, b.Path()) {
		t.Error("still mounted after Cleanup")
	}
	if _, err := os.Stat(filepath.Join(dir, "not-ours")); err != nil {
		t.Error("Cleanup removed a file it did not make")
	}
	if _, err := Open(filepath.Join(dir, "not-ours")); err == nil {
		t.Error("Open accepted a plain file")
	}
	b.Close()
}

// TestThreadRestored checks that the goroutine that creates namespaces stays in the host's one.
func TestThreadRestored(t *testing.T) {
	dir := testDir(t)
	host, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		ns, err := New(context.Background(), dir)
		if err != nil {
			t.Fatal(err)
		}
		ns.Close()
	}
	// Every thread of the process should be back in the host namespace.
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, task := range tasks {
		got, err := os.Readlink("/proc/self/task/" + task.Name() + "/ns/net")
		if err == nil && got != host {
			t.Errorf("thread %s is in %s, host is %s", task.Name(), got, host)
		}
	}
}
