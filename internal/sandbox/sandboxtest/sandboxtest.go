// Package sandboxtest is the conformance suite that every sandbox.Driver runs: isolation,
// limits, output, exit status, networking through a namespace from package netns, and cleanup.
// A driver's own test is a few lines:
//
//	func TestSuite(t *testing.T) {
//		sandboxtest.Run(t, func(t *testing.T) sandbox.Driver { return newDriver(t) })
//	}
//
// The suite runs real sandboxes from the image.LambdaRuntime root (built once per machine,
// cache dir overridable by NUBIS_IMAGE_CACHE). Tests skip when root or a tool is missing, and
// fail instead when NUBIS_REQUIRE_ALL=1.
package sandboxtest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nubis/nubis/internal/testenv"

	"github.com/nubis/nubis/internal/image"
	"github.com/nubis/nubis/internal/sandbox"
)

// Need skips the test when ok is false, saying why, or fails it when NUBIS_REQUIRE_ALL=1.
func Need(t testing.TB, ok bool, why string) {
	t.Helper()
	testenv.Need(t, ok, why)
}

// NeedRoot requires root.
func NeedRoot(t testing.TB) {
	t.Helper()
	Need(t, os.Geteuid() == 0, "needs root (namespaces, cgroups, mounts)")
}

var (
	rootOnce sync.Once
	rootPath string
	rootErr  error
)

// RootFS returns the image.LambdaRuntime root, building it on first use (about a minute, once
// per machine).
func RootFS(t testing.TB) string {
	t.Helper()
	NeedRoot(t)
	_, err := exec.LookPath("debootstrap")
	if err != nil {
		_, err = os.Stat("/usr/sbin/debootstrap")
	}
	b := &image.Builder{CacheDir: os.Getenv("NUBIS_IMAGE_CACHE"), Log: slog.New(slog.NewTextHandler(os.Stderr, nil))}
	if _, statErr := os.Stat(b.Path(image.LambdaRuntime)); statErr != nil {
		Need(t, err == nil, "debootstrap is not installed (apt-get install debootstrap) and the image is not cached")
	}
	rootOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		rootPath, rootErr = b.Ensure(ctx, image.LambdaRuntime)
	})
	if rootErr != nil {
		t.Fatalf("lambda runtime image: %v", rootErr)
	}
	return rootPath
}

// Buffer is an io.Writer safe for concurrent use, for a sandbox's output.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

var seq atomic.Int64

// ID returns a sandbox id unique to this test run.
func ID(t testing.TB) string {
	name := regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "-")
	if len(name) > 30 {
		name = name[len(name)-30:]
	}
	return strings.Trim(fmt.Sprintf("t%d-%d-%s", os.Getpid(), seq.Add(1), name), "-")
}

// Result is what Exec observed.
type Result struct {
	Stdout, Stderr string
	Status         sandbox.ExitStatus
	Stats          sandbox.Stats
}

// Exec creates and starts a sandbox from spec (ID and RootFS filled in when empty), waits up to
// a minute for it to end, reads its stats, and kills it.
func Exec(t testing.TB, d sandbox.Driver, spec sandbox.Spec) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if spec.ID == "" {
		spec.ID = ID(t)
	}
	if spec.RootFS == "" {
		spec.RootFS = RootFS(t)
	}
	var stdout, stderr Buffer
	spec.Stdout, spec.Stderr = &stdout, &stderr
	sb, err := d.Create(ctx, spec)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	defer sb.Kill(context.Background())
	if err := sb.Start(ctx); err != nil {
		t.Fatalf("start: %v", err)
	}
	select {
	case <-sb.Done():
	case <-ctx.Done():
		t.Fatalf("sandbox %s did not finish; output so far:\n%s\n%s", spec.ID, stdout.String(), stderr.String())
	}
	st, err := sb.Stats(ctx)
	if err != nil {
		t.Errorf("stats: %v", err)
	}
	if err := sb.Kill(ctx); err != nil {
		t.Errorf("kill: %v", err)
	}
	return Result{Stdout: stdout.String(), Stderr: stderr.String(), Status: sb.ExitStatus(), Stats: st}
}

// Python is the command line that runs a Python program.
func Python(program string) []string { return []string{"/usr/bin/python3", "-c", program} }

// Run runs the suite against the drivers newDriver returns. Drivers returned for one test must
// share their state, as the drivers of two successive nubis processes on one data dir do.
func Run(t *testing.T, newDriver func(t *testing.T) sandbox.Driver) {
	NeedRoot(t)
	tests := []struct {
		name string
		fn   func(*testing.T, sandbox.Driver)
	}{
		{"Output", testOutput},
		{"ExitCode", testExitCode},
		{"Identity", testIdentity},
		{"ReadOnlyRoot", testReadOnlyRoot},
		{"TmpSize", testTmpSize},
		{"CodeMount", testCodeMount},
		{"HostHidden", testHostHidden},
		{"Seccomp", testSeccomp},
		{"Memory", testMemory},
		{"Pids", testPids},
		{"NetNS", testNetNS},
		{"OwnNetwork", testOwnNetwork},
		{"KillCleans", testKillCleans},
		{"CreateThenStart", testCreateThenStart},
		{"ListRemove", testListRemove},
		{"Invalid", testInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newDriver(t)) })
	}
	t.Run("Attach", func(t *testing.T) { testAttach(t, newDriver) })
}
