// Package e2e tests nubis end to end: the real binary, driven by the real aws CLI, ssh-keygen and
// signals, as a user would. The binary is built once for the whole package.
package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nubis/nubis/internal/testenv"
)

var nubisBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "nubis-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	nubisBin = filepath.Join(dir, "nubis")
	build := exec.Command("go", "build", "-o", nubisBin, "github.com/nubis/nubis/cmd/nubis")
	// Static, as `make build` makes it: nubis is also the init inside its instances.
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building nubis:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// need skips the test when a tool is missing, or fails it under NUBIS_REQUIRE_ALL=1 (as CI runs).
func need(t *testing.T, tool string) string {
	t.Helper()
	path, err := exec.LookPath(tool)
	testenv.Need(t, err == nil, tool+" is not installed")
	return path
}

// server is a nubis serve process.
type server struct {
	cmd      *exec.Cmd
	dataDir  string
	endpoint string
	logs     *logBuffer
	done     chan struct{} // closed when the process has exited; err is then its exit error
	err      error
}

// startServer runs `nubis serve` on a free loopback port with dataDir and waits until it answers
// its health check.
func startServer(t *testing.T, dataDir string) *server {
	t.Helper()
	cmd := exec.Command(nubisBin, "serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--log-format", "json")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, dataDir: dataDir, logs: &logBuffer{}, done: make(chan struct{})}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			s.logs.WriteString(line + "\n")
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "nubis is serving" {
				ready <- fmt.Sprint(rec["endpoint"])
			}
		}
		s.err = cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() { s.kill() })
	select {
	case s.endpoint = <-ready:
	case <-s.done:
		t.Fatalf("nubis serve exited before it was ready: %v\n%s", s.err, s.logs)
	case <-time.After(20 * time.Second):
		t.Fatalf("nubis serve not ready after 20 s:\n%s", s.logs)
	}
	resp, err := http.Get(s.endpoint + "/_nubis/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("health: %d", resp.StatusCode)
	}
	return s
}

// kill stops the server at the end of a test: gracefully (so that it releases its environments'
// mounts), and by SIGKILL if it does not stop in time.
func (s *server) kill() {
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		return
	case <-time.After(20 * time.Second):
	}
	s.cmd.Process.Kill()
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
	}
}

// stop sends sig and returns the exit error once the process has exited.
func (s *server) stop(t *testing.T, sig syscall.Signal) error {
	t.Helper()
	s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
		return s.err
	case <-time.After(40 * time.Second):
		t.Fatalf("nubis did not exit after %v", sig)
		return nil
	}
}

// env returns the variables `nubis env` prints for dataDir, as a map.
func env(t *testing.T, dataDir string) map[string]string {
	t.Helper()
	out, err := exec.Command(nubisBin, "env", "--data-dir", dataDir).Output()
	if err != nil {
		t.Fatalf("nubis env: %v", err)
	}
	vars := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		kv, ok := strings.CutPrefix(line, "export ")
		if !ok {
			t.Fatalf("nubis env printed %q", line)
		}
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = strings.Trim(v, "'")
	}
	return vars
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// logBuffer collects a server's log lines; safe for the reader goroutine and the test together.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) WriteString(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.WriteString(s)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
