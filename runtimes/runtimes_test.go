package runtimes

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nubis/nubis/internal/testenv"
)

// The clients run here with the host's interpreters against a small Runtime API written below;
// nubis's own Runtime API and the sandboxes are tested with it elsewhere.

// ---------------------------------------------------------------------------------------------
// A Runtime API for tests.

// invocation is what GET /runtime/invocation/next hands out.
type invocation struct {
	ID            string
	Payload       string
	Deadline      time.Time
	ARN           string
	TraceID       string
	ClientContext string
	Cognito       string
}

// outcome is what a runtime posted: "response" or "error" for an invocation, "init" for
// /runtime/init/error.
type outcome struct {
	Kind        string
	ID          string
	ErrorType   string // the Lambda-Runtime-Function-Error-Type header
	ContentType string
	Body        []byte
}

type runtimeAPI struct {
	srv      *httptest.Server
	next     chan invocation
	outcomes chan outcome
	quit     chan struct{}
	nextID   atomic.Int64
	calls    atomic.Int64 // GET /runtime/invocation/next requests so far
	waiting  atomic.Int64 // of those, how many wait for an invocation now
}

func newRuntimeAPI(t testing.TB) *runtimeAPI {
	a := &runtimeAPI{
		next:     make(chan invocation),
		outcomes: make(chan outcome, 16),
		quit:     make(chan struct{}),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", func(w http.ResponseWriter, r *http.Request) {
		var inv invocation
		a.calls.Add(1)
		a.waiting.Add(1)
		defer a.waiting.Add(-1)
		select {
		case inv = <-a.next:
		case <-r.Context().Done():
			return
		case <-a.quit:
			http.Error(w, "shutting down", http.StatusGone)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Lambda-Runtime-Aws-Request-Id", inv.ID)
		h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(inv.Deadline.UnixMilli(), 10))
		h.Set("Lambda-Runtime-Invoked-Function-Arn", inv.ARN)
		if inv.TraceID != "" {
			h.Set("Lambda-Runtime-Trace-Id", inv.TraceID)
		}
		if inv.ClientContext != "" {
			h.Set("Lambda-Runtime-Client-Context", inv.ClientContext)
		}
		if inv.Cognito != "" {
			h.Set("Lambda-Runtime-Cognito-Identity", inv.Cognito)
		}
		io.WriteString(w, inv.Payload)
	})
	post := func(kind string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			o := outcome{
				Kind:        kind,
				ID:          r.PathValue("id"),
				ErrorType:   r.Header.Get("Lambda-Runtime-Function-Error-Type"),
				ContentType: r.Header.Get("Content-Type"),
				Body:        body,
			}
			select {
			case a.outcomes <- o:
			case <-a.quit:
			}
			w.WriteHeader(http.StatusAccepted)
			io.WriteString(w, `{"status":"OK"}`)
		}
	}
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/response", post("response"))
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/error", post("error"))
	mux.HandleFunc("POST /2018-06-01/runtime/init/error", post("init"))
	a.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		close(a.quit)
		a.srv.Close()
	})
	return a
}

func (a *runtimeAPI) addr() string { return strings.TrimPrefix(a.srv.URL, "http://") }

// invoke hands out one invocation and waits for what the runtime posts for it.
func (a *runtimeAPI) invoke(t testing.TB, inv invocation) outcome {
	t.Helper()
	if inv.ID == "" {
		inv.ID = fmt.Sprintf("8f5e6c1a-0000-4000-8000-%012d", a.nextID.Add(1))
	}
	if inv.Deadline.IsZero() {
		inv.Deadline = time.Now().Add(3 * time.Second)
	}
	if inv.ARN == "" {
		inv.ARN = "arn:aws:lambda:us-east-1:000000000000:function:fn"
	}
	select {
	case a.next <- inv:
	case <-time.After(15 * time.Second):
		t.Fatalf("the runtime did not ask for invocation %s", inv.ID)
	}
	o := a.wait(t)
	if o.Kind != "init" && o.ID != inv.ID {
		t.Fatalf("outcome for %q, want %q", o.ID, inv.ID)
	}
	return o
}

// waitNext waits until the runtime has asked for an invocation more than after times and is the
// only one waiting for one.
func (a *runtimeAPI) waitNext(t testing.TB, after int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for a.calls.Load() <= after || a.waiting.Load() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the runtime is not waiting for an invocation (%d requests, %d waiting)", a.calls.Load(), a.waiting.Load())
		}
		time.Sleep(time.Millisecond)
	}
}

func (a *runtimeAPI) wait(t testing.TB) outcome {
	t.Helper()
	select {
	case o := <-a.outcomes:
		return o
	case <-time.After(15 * time.Second):
		t.Fatal("the runtime posted nothing")
	}
	return outcome{}
}

// ---------------------------------------------------------------------------------------------
// Interpreters and runtime processes.

// interpreter finds one by command name or path; missing, it skips the test, or fails it when
// NUBIS_REQUIRE_ALL=1.
func interpreter(t *testing.T, name string, args ...string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		err = exec.Command(p, args...).Run()
	}
	testenv.Need(t, err == nil, fmt.Sprintf("interpreter %s is not usable here (%v)", name, err))
	return p
}

// pythons are the Python 3 interpreters to test with: the one on PATH (pyenv's, perhaps) and the
// system's, when they differ.
var pythons = []string{"python3", "/usr/bin/python3"}

func forEachPython(t *testing.T, f func(t *testing.T, python string)) {
	var seen []string
	for _, name := range pythons {
		t.Run(strings.Trim(strings.ReplaceAll(name, "/", "_"), "_"), func(t *testing.T) {
			p := interpreter(t, name, "-c", "import sys; assert sys.version_info >= (3, 8)")
			real, err := filepath.EvalSymlinks(p)
			if err != nil {
				real = p
			}
			if slices.Contains(seen, real) {
				t.Skipf("%s is %s, tested already", name, real)
			}
			seen = append(seen, real)
			f(t, p)
		})
	}
}

var (
	installOnce sync.Once
	installDir  string
	installErr  error
)

// installed runs Install once into a directory of the test binary's.
func installed(t testing.TB) string {
	installOnce.Do(func() {
		installDir, installErr = os.MkdirTemp("", "nubis-runtimes-")
		if installErr == nil {
			installErr = Install(installDir)
		}
	})
	if installErr != nil {
		t.Fatal(installErr)
	}
	return installDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if installDir != "" {
		os.RemoveAll(installDir)
	}
	os.Exit(code)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type runtimeProc struct {
	cmd    *exec.Cmd
	stdout *syncBuffer
	stderr *syncBuffer
	exited chan struct{}
}

// function is a function's code: file name to content.
type function map[string]string

// start runs a runtime client the way nubis does in a sandbox: the task directory as working
// directory and LAMBDA_TASK_ROOT, the Lambda environment variables, and little else.
func start(t testing.TB, api *runtimeAPI, argv []string, code function, handler string) *runtimeProc {
	t.Helper()
	task := t.TempDir()
	for name, content := range code {
		p := filepath.Join(task, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = task
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
		"AWS_LAMBDA_RUNTIME_API=" + api.addr(),
		"_HANDLER=" + handler,
		"LAMBDA_TASK_ROOT=" + task,
		"AWS_LAMBDA_FUNCTION_NAME=fn",
		"AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128",
		"AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/fn",
		"AWS_LAMBDA_LOG_STREAM_NAME=2026/11/25/[$LATEST]0123456789abcdef0123456789abcdef",
		"AWS_REGION=us-east-1",
		"TZ=UTC",
	}
	if v, ok := os.LookupEnv("PYENV_ROOT"); ok {
		cmd.Env = append(cmd.Env, "PYENV_ROOT="+v)
	}
	p := &runtimeProc{cmd: cmd, stdout: &syncBuffer{}, stderr: &syncBuffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("runtime stdout:\n%s\nruntime stderr:\n%s", p.stdout, p.stderr)
		}
	})
	return p
}

// exitCode waits for the process to end by itself.
func (p *runtimeProc) exitCode(t testing.TB) int {
	t.Helper()
	select {
	case <-p.exited:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(10 * time.Second):
		t.Fatal("the runtime did not exit")
	}
	return 0
}

// waitOutput waits until stdout matches re.
func (p *runtimeProc) waitOutput(t testing.TB, re string) {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(5 * time.Second)
	for !rx.MatchString(p.stdout.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("stdout does not match %q:\n%q", re, p.stdout.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func decode(t testing.TB, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not a JSON object: %q: %v", b, err)
	}
	return m
}

func wantString(t testing.TB, m map[string]any, key, want string) {
	t.Helper()
	if got, ok := m[key].(string); !ok || got != want {
		t.Errorf("%s = %#v, want %q", key, m[key], want)
	}
}

func wantResponse(t testing.TB, o outcome, want string) {
	t.Helper()
	if o.Kind != "response" || string(o.Body) != want {
		t.Fatalf("got %s %q (error type %q), want response %q", o.Kind, o.Body, o.ErrorType, want)
	}
}

// ---------------------------------------------------------------------------------------------
// Install.

func TestInstall(t *testing.T) {
	dir := t.TempDir()
	if err := Install(dir); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"python/bootstrap.py", "node/bootstrap.js"} {
		want, err := files.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from the embedded file", name)
		}
		for _, q := range []string{p, filepath.Dir(p)} {
			fi, err := os.Stat(q)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o755 {
				t.Errorf("%s: mode %v, want 0755", q, fi.Mode().Perm())
			}
		}
	}
	if got := strings.TrimPrefix(PythonBootstrap, MountPoint+"/"); got != "python/bootstrap.py" {
		t.Errorf("PythonBootstrap %s is not where Install puts it", PythonBootstrap)
	}
	if got := strings.TrimPrefix(NodeBootstrap, MountPoint+"/"); got != "node/bootstrap.js" {
		t.Errorf("NodeBootstrap %s is not where Install puts it", NodeBootstrap)
	}

	// Again: an unchanged file stays (same inode); a changed one or a wrong mode is replaced.
	py := filepath.Join(dir, "python", "bootstrap.py")
	js := filepath.Join(dir, "node", "bootstrap.js")
	before, _ := os.Stat(py)
	if err := os.WriteFile(js, []byte("stale"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "node"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := Install(dir); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(py)
	if !os.SameFile(before, after) {
		t.Error("Install rewrote an unchanged file")
	}
	want, _ := files.ReadFile("node/bootstrap.js")
	if got, _ := os.ReadFile(js); !bytes.Equal(got, want) {
		t.Error("Install left a stale file")
	}
	if fi, _ := os.Stat(js); fi.Mode().Perm() != 0o755 {
		t.Errorf("replaced file mode %v", fi.Mode().Perm())
	}
	if fi, _ := os.Stat(filepath.Join(dir, "node")); fi.Mode().Perm() != 0o755 {
		t.Errorf("directory mode %v after Install", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "node"))
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}

func TestCommand(t *testing.T) {
	for rt, want := range map[string][]string{
		"python3.11": {"python3", "/var/runtime/python/bootstrap.py"},
		"python3.13": {"python3", "/var/runtime/python/bootstrap.py"},
		"nodejs18.x": {"node", "/var/runtime/node/bootstrap.js"},
		"nodejs22.x": {"node", "/var/runtime/node/bootstrap.js"},
	} {
		if got, ok := Command(rt); !ok || !slices.Equal(got, want) {
			t.Errorf("Command(%q) = %q, %v; want %q", rt, got, ok, want)
		}
	}
	if _, ok := Command("provided.al2023"); ok {
		t.Error("Command(provided.al2023) reported a client")
	}
}
