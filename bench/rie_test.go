package bench

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nubis/nubis/runtimes"
)

// The same handler, run by AWS's Lambda Runtime Interface Emulator (RIE) instead of nubis: RIE
// starts our runtime client (runtimes/python/bootstrap.py) with the host's python3, serves it the
// Runtime API, and takes invocations at POST /2015-03-31/functions/function/invocations, on
// loopback only. RIE runs no sandbox, checks no signature and keeps no state: it is the floor that
// the same runtime client reaches with the least platform around it.
//
// RIE serves one invocation at a time: a second one that arrives while one runs crashes it (a nil
// pointer dereference in rapidcore's Server.Invoke, at the version below). Its throughput benchmark
// therefore runs one RIE per client, as nubis runs one environment per concurrent invocation.
//
// The benchmarks build RIE with `go install` from the Go module proxy (or the module cache) into a
// temporary GOBIN, once per run, and skip when that fails.

// rieModule is RIE's command, at the version the Go module proxy serves.
const rieModule = "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@v0.0.0-20261030222936-bef5c4ba774d"

// hostPython runs the runtime client under RIE: Debian 12's python3.11, as in nubis's image.
const hostPython = "/usr/bin/python3"

var rie struct {
	once sync.Once
	bin  string // the built binary
	task string // LAMBDA_TASK_ROOT: app.py with echoHandler
	boot string // bootstrap.py
	err  error
}

// rieSetup builds RIE and lays out the function's code and runtime client, once per run; it skips
// b when it cannot.
func rieSetup(b *testing.B) {
	b.Helper()
	rie.once.Do(func() {
		dir, err := os.MkdirTemp("", "nubis-bench-rie-")
		if err != nil {
			rie.err = err
			return
		}
		atExit = append(atExit, func() { os.RemoveAll(dir) })
		goBin, err := exec.LookPath("go")
		if err != nil {
			goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		cmd := exec.Command(goBin, "install", rieModule)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOBIN="+filepath.Join(dir, "bin"), "GOWORK=off", "GOFLAGS=-buildvcs=false", "GOTOOLCHAIN=local")
		if out, err := cmd.CombinedOutput(); err != nil {
			rie.err = fmt.Errorf("go install %s: %v\n%s", rieModule, err, out)
			return
		}
		rie.bin = filepath.Join(dir, "bin", "aws-lambda-rie")
		rie.task = filepath.Join(dir, "task")
		if err := os.MkdirAll(rie.task, 0o755); err != nil {
			rie.err = err
			return
		}
		if err := os.WriteFile(filepath.Join(rie.task, "app.py"), []byte(echoHandler), 0o644); err != nil {
			rie.err = err
			return
		}
		if err := runtimes.Install(filepath.Join(dir, "runtime")); err != nil {
			rie.err = err
			return
		}
		rie.boot = filepath.Join(dir, "runtime", "python", "bootstrap.py")
	})
	if rie.err != nil {
		b.Skipf("skipped: cannot build AWS's Lambda Runtime Interface Emulator: %v", rie.err)
	}
	if _, err := os.Stat(hostPython); err != nil {
		b.Skipf("skipped: RIE runs the runtime client with %s: %v", hostPython, err)
	}
}

// rieProc is one running RIE with its runtime.
type rieProc struct {
	cmd  *exec.Cmd
	url  string // the invocations URL
	log  string // its output (stdout and stderr)
	done chan struct{}
	once sync.Once
}

// startRIE starts an RIE on a free loopback port and waits until it accepts connections. RIE
// starts the runtime on the first invocation. The RIE and its runtime are killed when b ends.
func startRIE(b *testing.B) *rieProc {
	b.Helper()
	addr, api := freeAddr(b), freeAddr(b)
	logFile, err := os.CreateTemp(b.TempDir(), "rie-*.log")
	if err != nil {
		b.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(rie.bin, "--runtime-interface-emulator-address", addr, "--runtime-api-address", api,
		hostPython, rie.boot, "app.handler")
	cmd.Dir = rie.task
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + rie.task, "LANG=C.UTF-8", "TZ=:UTC",
		"LAMBDA_TASK_ROOT=" + rie.task, "_HANDLER=app.handler", "AWS_LAMBDA_FUNCTION_NAME=echo"}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// A process group of its own, to kill the runtime with it; and never outlive the benchmark.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	p := &rieProc{cmd: cmd, url: "http://" + addr + "/2015-03-31/functions/function/invocations",
		log: logFile.Name(), done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	b.Cleanup(p.stop)
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-p.done:
			b.Fatalf("aws-lambda-rie exited: %s\n%s", cmd.ProcessState, p.output())
		default:
		}
		if time.Now().After(deadline) {
			b.Fatalf("aws-lambda-rie does not listen on %s: %v\n%s", addr, err, p.output())
		}
		time.Sleep(200 * time.Microsecond)
	}
	return p
}

// stop kills the RIE's process group (RIE and its runtime), once.
func (p *rieProc) stop() {
	p.once.Do(func() {
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	})
}

func (p *rieProc) output() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// invoke posts payload to RIE with hc and checks the answer.
func (p *rieProc) invoke(ctx context.Context, hc *http.Client, payload, want string) error {
	req, err := newRequest(ctx, p.url, payload)
	if err != nil {
		return err
	}
	return post(hc, req, want)
}

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr(b *testing.B) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func newRequest(ctx context.Context, url, body string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	return req, nil
}

// post sends an invocation and checks that it succeeded with the answer want.
func post(hc *http.Client, req *http.Request, want string) error {
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Amz-Function-Error") != "" || string(body) != want {
		return fmt.Errorf("invoke: %s (function error %q): %s, want %s", resp.Status, resp.Header.Get("X-Amz-Function-Error"), body, want)
	}
	return nil
}

// BenchmarkInvokeWarmRIE is BenchmarkInvokeWarm against RIE: the same event, handler and runtime
// client, posted with plain net/http (RIE takes no signature) over one connection.
func BenchmarkInvokeWarmRIE(b *testing.B) {
	rieSetup(b)
	p := startRIE(b)
	hc, dials := oneConnClient()
	measure(b, dials, func() error {
		return p.invoke(b.Context(), hc, `{"hello":"world","n":1}`, `{"hello": "world", "n": 1}`)
	})
}

// rieInitRE finds the runtime's init time in RIE's log. (The Init Duration of RIE's REPORT line
// times only the call that starts the init, which runs asynchronously: it says about 0.03 ms.)
var rieInitRE = regexp.MustCompile(`INIT REPORT\(durationMs: ([0-9.]+)\)`)

// BenchmarkColdStartRIE is BenchmarkColdStart against RIE: coldStarts times, start a new RIE and
// time its first invocation, which starts the runtime (p50-ms, ...); init-p50-ms, ... are the
// runtime's init as RIE logs it, and start-p50-ms, ... the time from starting the RIE process until
// it accepts connections (not part of the invocation's latency).
func BenchmarkColdStartRIE(b *testing.B) {
	rieSetup(b)
	fixedWork(b, func() []metric {
		var lat, inits, starts []time.Duration
		for range coldStarts {
			t0 := time.Now()
			p := startRIE(b)
			starts = append(starts, time.Since(t0))
			hc, _ := oneConnClient()
			t1 := time.Now()
			err := p.invoke(b.Context(), hc, `{"cold":true}`, `{"cold": true}`)
			lat = append(lat, time.Since(t1))
			if err != nil {
				b.Fatalf("%v\n%s", err, p.output())
			}
			m := rieInitRE.FindStringSubmatch(p.output())
			if m == nil {
				b.Fatalf("no INIT REPORT in RIE's log:\n%s", p.output())
			}
			f, _ := strconv.ParseFloat(m[1], 64)
			inits = append(inits, time.Duration(f*float64(time.Millisecond)))
			hc.CloseIdleConnections()
			p.stop()
		}
		st := latencyStats(lat)
		results[b.Name()] = st
		ms := append(latencyMetrics("", st), latencyMetrics("init-", latencyStats(inits))...)
		ms = append(ms, latencyMetrics("start-", latencyStats(starts))...)
		return append(ms, metric{float64(len(lat)), "cold-starts"})
	})
}

// BenchmarkThroughputRIE is BenchmarkThroughput against RIE: throughputClients clients, each with
// an RIE of its own (see above) and one connection to it.
func BenchmarkThroughputRIE(b *testing.B) {
	rieSetup(b)
	fixedWork(b, func() []metric {
		procs := make([]*rieProc, throughputClients)
		clients := make([]*http.Client, throughputClients)
		for i := range procs {
			procs[i] = startRIE(b)
			clients[i], _ = oneConnClient()
		}
		return hammer(b, func() {}, func(client, i int) error {
			payload, want := echoPayload(client, i)
			return procs[client].invoke(context.Background(), clients[client], payload, want)
		})
	})
}
