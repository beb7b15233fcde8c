package lambda

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nubis/nubis/internal/netns"
	"github.com/nubis/nubis/internal/runtimeapi"
	"github.com/nubis/nubis/internal/sandbox"
	"github.com/nubis/nubis/runtimes"
)

// An environment is one execution environment: a sandbox running a function version's runtime,
// its network namespace with the Runtime API listening inside, and its log stream. It serves one
// invocation at a time.
type environment struct {
	id      string
	key     envKey
	fn      string // function name
	sb      sandbox.Sandbox
	ns      *netns.NS
	api     *runtimeapi.Server
	logs    *logStream
	out     *os.File // read end of the runtime's stdout and stderr
	outMu   sync.Mutex
	tail    *tailBuffer // the current invocation's log, for LogType Tail
	created time.Time
	// initDuration is reported on the first invocation only.
	initDuration time.Duration
	cold         bool
	lastUsed     time.Time
}

// envKey identifies what an environment runs: a function version as configured at a revision. A
// new configuration or code gives a new key, and environments of the old key are retired.
type envKey struct {
	account, function, version, revision string
}

// runtimeArgs is how a runtime starts inside the sandbox: our runtime client, or for the provided
// runtimes the function's own bootstrap.
func runtimeArgs(runtime string) []string {
	if args, ok := runtimes.Command(runtime); ok {
		return args
	}
	return []string{"/var/task/bootstrap"}
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// startEnvironment makes a cold environment for v and waits until its runtime has initialised.
func (s *Service) startEnvironment(ctx context.Context, account string, v version) (_ *environment, err error) {
	if err := s.ensureImage(ctx); err != nil {
		return nil, err
	}
	// Its code and layers are unpacked by the time a version is Active; a version invoked while
	// an update is in progress (or published from one) unpacks them here (both are done once).
	if err := s.unpack(v.CodeHex); err != nil {
		return nil, fmt.Errorf("unpack code: %w", err)
	}
	if len(v.LayerHexes) > 0 {
		if err := s.unpackLayers(v.LayerHexes); err != nil {
			return nil, fmt.Errorf("unpack layers: %w", err)
		}
	}
	c := v.Config
	env := &environment{id: "lambda-" + randomHex(8), fn: c.FunctionName, cold: true,
		key: envKey{account, c.FunctionName, c.Version, c.RevisionID}, created: s.now(), tail: &tailBuffer{}}
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()
	stream := fmt.Sprintf("%s/[%s]%s", env.created.UTC().Format("2006/01/02"), c.Version, randomHex(16))
	if env.logs, err = s.openLogStream(account, c, stream); err != nil {
		return nil, err
	}
	undo = append(undo, func() { env.logs.Close() })
	if env.ns, err = netns.New(ctx, s.cfg.NetnsDir); err != nil {
		return nil, fmt.Errorf("environment network: %w", err)
	}
	undo = append(undo, func() { env.ns.Close() })
	l, err := env.ns.Listen(ctx, "tcp", "127.0.0.1:9001")
	if err != nil {
		return nil, fmt.Errorf("runtime API listener: %w", err)
	}
	env.api = runtimeapi.New(s.log)
	go env.api.Serve(l)
	undo = append(undo, env.api.Close)
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	env.out = r
	undo = append(undo, func() { r.Close() })
	go env.copyOutput()

	family := supportedRuntimes[c.Runtime]
	vars := []string{
		"AWS_LAMBDA_RUNTIME_API=127.0.0.1:9001", "_HANDLER=" + c.Handler, "LAMBDA_TASK_ROOT=/var/task",
		"LAMBDA_RUNTIME_DIR=/var/runtime", "AWS_LAMBDA_FUNCTION_NAME=" + c.FunctionName,
		fmt.Sprintf("AWS_LAMBDA_FUNCTION_MEMORY_SIZE=%d", c.MemorySize), "AWS_LAMBDA_FUNCTION_VERSION=" + c.Version,
		"AWS_REGION=" + s.cfg.Region, "AWS_DEFAULT_REGION=" + s.cfg.Region,
		"AWS_LAMBDA_LOG_GROUP_NAME=" + logGroupOf(c), "AWS_LAMBDA_LOG_STREAM_NAME=" + stream,
		"AWS_EXECUTION_ENV=AWS_Lambda_" + c.Runtime, "AWS_LAMBDA_INITIALIZATION_TYPE=on-demand",
		"TZ=:UTC", "LANG=C.UTF-8", "PATH=/usr/local/bin:/usr/bin:/bin:/opt/bin", "HOME=/tmp",
		// Where layers put libraries, as Lambda's runtimes look for them.
		"LD_LIBRARY_PATH=/var/task:/var/task/lib:/opt/lib",
	}
	if family == "node" {
		vars = append(vars, "NODE_PATH=/opt/nodejs/"+strings.Replace(strings.TrimSuffix(c.Runtime, ".x"), "nodejs", "node", 1)+
			"/node_modules:/opt/nodejs/node_modules:/var/runtime/node_modules")
	}
	if c.Environment != nil {
		for k, val := range c.Environment.Variables {
			vars = append(vars, k+"="+val)
		}
	}
	mounts := []sandbox.Mount{
		{Source: s.taskDir(v.CodeHex), Destination: "/var/task"},
		{Source: s.cfg.RuntimeDir, Destination: runtimes.MountPoint},
	}
	if len(v.LayerHexes) > 0 {
		mounts = append(mounts, sandbox.Mount{Source: s.optDir(v.LayerHexes), Destination: "/opt"})
	}
	spec := sandbox.Spec{
		ID: env.id, RootFS: s.rootfs, Args: runtimeArgs(c.Runtime), Env: vars, Cwd: "/var/task", Hostname: "localhost",
		Mounts:      mounts,
		TmpfsSizeMB: c.EphemeralStorage.Size, MemoryMB: c.MemorySize, PidsLimit: sandbox.DefaultPidsLimit,
		// The runtime initialises with all the CPU it can get; once it is ready, the environment
		// is limited to its memory's share (one vCPU at 1,769 MB), as Lambda does.
		CPUs:      -1,
		NetNSPath: env.ns.Path(), Stdout: w, Stderr: w,
	}
	started := time.Now()
	sb, err := s.cfg.Sandboxes.Create(ctx, spec)
	w.Close()
	if err != nil {
		return nil, fmt.Errorf("create sandbox: %w", err)
	}
	env.sb = sb
	undo = append(undo, func() { sb.Kill(context.Background()) })
	env.logs.printf("INIT_START Runtime Version: %s\tRuntime Version ARN: arn:aws:lambda:%s::runtime:nubis-%s\n",
		s.runtimeVersion(family), s.cfg.Region, s.imageID)
	if err := sb.Start(ctx); err != nil {
		return nil, fmt.Errorf("start sandbox: %w", err)
	}
	initCtx, cancel := context.WithTimeout(ctx, initTimeout)
	defer cancel()
	select {
	case <-env.api.Ready():
		env.initDuration = time.Since(started)
		if err := sb.SetCPUs(ctx, sandbox.CPUsForMemory(c.MemorySize)); err != nil {
			return nil, err
		}
		return env, nil
	case res := <-env.api.InitError():
		return nil, &initFailure{result: res}
	case <-sb.Done():
		// A runtime that reported its init error exits next: both may be ready by now, and the
		// report is what Lambda answers (select would pick either).
		select {
		case res := <-env.api.InitError():
			return nil, &initFailure{result: res}
		default:
		}
		env.drainOutput()
		return nil, &initFailure{errorType: "Runtime.ExitError", detail: "Runtime exited with error: " + sb.ExitStatus().String()}
	case <-initCtx.Done():
		return nil, &initFailure{errorType: "Sandbox.Timedout", detail: fmt.Sprintf("Init timed out after %.2f seconds", initTimeout.Seconds())}
	}
}

// initTimeout is Lambda's limit on a runtime's initialisation.
const initTimeout = 10 * time.Second

// initFailure is a runtime that could not initialise: either what the runtime reported (result),
// or what the platform saw (errorType and detail).
type initFailure struct {
	result    runtimeapi.Result
	errorType string
	detail    string
}

func (e *initFailure) Error() string {
	return "runtime init failed: " + e.errorType + e.result.ErrorType
}

// payload is what the invocation that met the failure answers.
func (e *initFailure) payload(reqID string) runtimeapi.Result {
	if e.result.ErrorType != "" {
		return e.result
	}
	return platformError(e.errorType, reqID, e.detail)
}

// copyOutput copies what the runtime prints into the log stream and the current invocation's tail.
func (env *environment) copyOutput() {
	br := bufio.NewReaderSize(env.out, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			env.outMu.Lock()
			env.logs.write(line)
			env.tail.Write(line)
			env.outMu.Unlock()
		}
		if err != nil {
			return
		}
	}
}

// drainOutput waits, briefly, until the runtime's output written so far has been copied, so that
// it lands in the log before the END line.
func (env *environment) drainOutput() {
	deadline := time.Now().Add(50 * time.Millisecond)
	for time.Now().Before(deadline) {
		n, err := unix.IoctlGetInt(int(env.out.Fd()), unix.TIOCINQ) // FIONREAD
		if err != nil || n == 0 {
			break
		}
		time.Sleep(200 * time.Microsecond)
	}
	env.outMu.Lock() // a line being copied now finishes first
	env.outMu.Unlock()
}

// stop kills everything of the environment and releases its resources.
func (env *environment) stop(ctx context.Context) {
	if env.sb != nil {
		env.sb.Kill(ctx)
	}
	env.api.Close()
	env.ns.Close()
	env.out.Close()
	env.logs.Close()
}

// runtimeVersion reads the version of a runtime family's interpreter from the image's dpkg
// database, so that INIT_START reports what really runs.
func (s *Service) runtimeVersion(family string) string {
	pkg := map[string]string{"python": "python3.11", "node": "nodejs"}[family]
	if pkg == "" {
		return "provided:al2023"
	}
	b, err := os.ReadFile(filepath.Join(s.rootfs, "var/lib/dpkg/status"))
	if err != nil {
		return family
	}
	for _, para := range strings.Split(string(b), "\n\n") {
		if strings.HasPrefix(para, "Package: "+pkg+"\n") {
			for _, line := range strings.Split(para, "\n") {
				if v, ok := strings.CutPrefix(line, "Version: "); ok {
					v, _, _ = strings.Cut(v, "-")
					v, _, _ = strings.Cut(v, "+")
					return map[string]string{"python": "python:", "node": "nodejs:"}[family] + v
				}
			}
		}
	}
	return family
}

// platformError is an error Lambda itself reports for an invocation, in its shape:
// {"errorType": "...", "errorMessage": "RequestId: <id> Error: <detail>"}.
func platformError(typ, reqID, detail string) runtimeapi.Result {
	b, _ := json.Marshal(map[string]string{"errorType": typ, "errorMessage": "RequestId: " + reqID + " Error: " + detail})
	return runtimeapi.Result{ErrorType: typ, Payload: b}
}
